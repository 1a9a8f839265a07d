"""New tickets: checked, judged and made into every row their creation writes, as plain
values (`prepare`, which reads nothing, so that an import's worker processes run it), then
written (`store`, in the writer's transaction, each table once per batch).

    check (but the external ids) → judge (pure clock) → rows: ticket, events, target
    states, breaches, findings, notices, audit records, totals, the wake → store

The audit chain holds each ticket's records in the order one ticket at a time writes them:
its creation, its events, then the breaches its judgement found. A ticket already stored
is judged again by `WriteFlow.settle`, which reads what it holds; a new one holds nothing,
so all that follows from its events is known before anything is written.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import Any, cast

from sqlmodel import Session

from monitor.audit import service as audit
from monitor.breaches.findings import Facts, Thresholds, distinct, opened_row, ticket_findings
from monitor.breaches.models import Breach, Finding
from monitor.breaches.service import breach_entry, breached, new_breach
from monitor.core.batch import (
    Bound,
    JsonText,
    Part,
    bind,
    draw_ids,
    insert_bound,
    insert_returning_ids,
    insert_rows,
    insert_together,
    on_sqlite,
)
from monitor.core.grams import fts_document
from monitor.core.timeutil import utc
from monitor.metrics.totals import Deltas
from monitor.notifications.service import enqueue, notices_for_states, routing_of
from monitor.sla.models import StateRow, TargetState
from monitor.sla.service import SlaContext, state_values
from monitor.sla.timer import Judgement, judge, wakes_at
from monitor.tickets.models import Event, EventRow, Ticket
from monitor.tickets.schemas import TicketIn
from monitor.tickets.service import (
    Actor,
    NewTicketCheck,
    Owner,
    created_entry,
    event_values,
    insert_tickets,
    name_lookup,
    new_ticket_problems,
    resolve_names,
)

_EVENTS = Event.__table__  # type: ignore[attr-defined]
_STATES = TargetState.__table__  # type: ignore[attr-defined]
_FINDINGS = Finding.__table__  # type: ignore[attr-defined]
_BREACHES = Breach.__table__  # type: ignore[attr-defined]
TICKETS = Ticket.__table__  # type: ignore[attr-defined]


def check(ctx: SlaContext, batch: Sequence[TicketIn], actor: Actor) -> list[NewTicketCheck]:
    """Each new ticket's problems, but its external id's (the database's to tell)."""
    names = name_lookup(ctx)
    return [new_ticket_problems(ctx, data, actor, names) for data in batch]


@dataclass
class Judged:
    """What one new ticket's judgement found, as `WriteFlow.last` shows it."""

    judgement: Judgement
    states: list[StateRow]
    events: list[EventRow]  # (their ids: their place in the batch, until `store` draws them)


@dataclass
class Prepared:
    """A batch of new tickets as the rows their creation writes, in plain values (an
    import's worker process hands them over by pickle, bound for the database: `bind`).
    The tickets' ids were drawn before; the events' and the breaches' are drawn by `store`,
    and until then an event's `corrects_id` is the corrected event's place in `events`
    (from 1) and a breach record's `entity_id` its breach's place in `breaches` (from 0).
    Audit records come with their payload's canonical text and, but for the breaches',
    their canonical head (`audit.record_head`)."""

    created: list[tuple[int, str, str]] = field(default_factory=list)  # id, pool, severity
    tickets: Rows = field(default_factory=list)
    events: Rows = field(default_factory=list)
    audit: list[audit.Entry] = field(default_factory=list)
    breach_records: list[int] = field(default_factory=list)  # their places in `audit`
    states: Rows = field(default_factory=list)
    breaches: Rows = field(default_factory=list)
    findings: Rows = field(default_factory=list)
    notices: list[dict[str, Any]] = field(default_factory=list)
    deltas: Deltas = field(default_factory=Deltas)
    wake: datetime | None = None
    judged: list[Judged] = field(default_factory=list)  # (kept only when asked)
    grams: list[str] = field(default_factory=list)  # (made only when asked)
    # The tickets' and target states' rows as they were before `bind` (kept when asked)
    plain: tuple[list[dict[str, Any]], list[dict[str, Any]]] | None = None

    def ticket_rows(self) -> list[dict[str, Any]]:
        """The tickets' rows (not bound, or kept by `bind`)."""
        rows = self.tickets if self.plain is None else self.plain[0]
        assert not isinstance(rows, Bound)
        return rows

    def state_rows(self) -> list[dict[str, Any]]:
        """The new target states' rows (not bound, or kept by `bind`)."""
        rows = self.states if self.plain is None else self.plain[1]
        assert not isinstance(rows, Bound)
        return rows

    def statuses(self) -> Counter[str]:
        """How many of the new target states have each status (bound or not)."""
        rows = self.states
        if isinstance(rows, Bound):
            if not rows.rows:
                return Counter()
            at = rows.names.index("status")
            return Counter(str(row[at]) for row in rows.rows)
        return Counter(str(row["status"]) for row in rows)

    def bind(self, *, postgres: bool, keep_plain: bool = False) -> Prepared:
        """Each table's rows bound for the database (`core.batch.bind`), as a worker
        process hands them over; with `keep_plain`, the tickets' and target states' rows
        kept as they were too (`plain`: a request's answer shows them)."""
        if keep_plain and self.plain is None:
            self.plain = (self.ticket_rows(), self.state_rows())
        for name, table in (
            ("tickets", TICKETS),
            ("events", _EVENTS),
            ("states", _STATES),
            ("breaches", _BREACHES),
            ("findings", _FINDINGS),
        ):
            rows = getattr(self, name)
            if not isinstance(rows, Bound):
                setattr(self, name, bind(table, rows, postgres=postgres))
        return self


Rows = list[dict[str, Any]] | Bound  # (bound: `Prepared.bind`)


def prepare(
    ctx: SlaContext,
    batch: Sequence[TicketIn],
    checks: Sequence[NewTicketCheck],
    actor: Actor,
    ticket_ids: Sequence[int],
    now: datetime,
    recorded_at: Sequence[Sequence[datetime] | None] | None = None,
    *,
    keep: bool = False,
    grams: bool = False,
) -> Prepared:
    """Every row the creation of these checked tickets (without a problem) writes, judged
    at `now`; `recorded_at`: when each event was recorded (back-filled history, the demo),
    else `now`. With `keep`, also what each judgement found (`Prepared.judged`); with
    `grams`, each ticket's search grams as SQLite indexes them (`Prepared.grams`)."""
    tickets: list[dict[str, Any]] = []
    all_events: list[dict[str, Any]] = []
    all_states: list[dict[str, Any]] = []
    breaches: list[dict[str, Any]] = []
    findings: list[dict[str, Any]] = []
    out = Prepared(
        tickets=tickets,
        events=all_events,
        states=all_states,
        breaches=breaches,
        findings=findings,
    )
    limits = Thresholds.of(ctx.settings)
    units, systems = name_lookup(ctx)
    routing = routing_of(ctx)
    for k, (data, checked, ticket_id) in enumerate(zip(batch, checks, ticket_ids, strict=True)):
        policy = checked.policy
        assert policy is not None and not checked.problems
        seen, timeline = checked.timelines
        judgement = judge(seen, data.severity, policy, ctx.calendar, now, ctx.tz, timeline)
        recorded = recorded_at[k] if recorded_at is not None else None
        row = {
            "id": ticket_id,
            "pool": data.pool,
            "external_id": data.external_id,
            "severity": data.severity,
            "current_severity": judgement.severity,
            "title": data.title,
            "description": data.description,
            "source": data.source,
            "units": resolve_names(data.units, units, "units", "")[0],
            "systems": resolve_names(data.systems, systems, "systems", "")[0],
            "policy_version": policy.version,
            "status": judgement.status,
            # The reported time follows its latest correction; scoring and lists go by it.
            "reported_at": next(x.at for x in timeline if x.type == "reported"),
            # Back-filled history (the demo) was created when its first event was recorded.
            "created_at": min(recorded, default=now) if recorded else now,
            "updated_at": max(recorded, default=now) if recorded else now,
            "created_by": actor.name,
        }
        tickets.append(row)
        out.created.append((ticket_id, data.pool, data.severity))
        if grams:
            out.grams.append(fts_document(data.external_id, data.title, data.description))
        _record(out, created_entry(row))
        owner = Owner(ticket_id, str(ticket_id), data.pool, data.external_id)
        first = len(all_events)
        events: list[EventRow] = []
        for i, (ev, tl) in enumerate(zip(data.events, seen, strict=True)):
            at = recorded[i] if recorded is not None else now
            corrected = events[tl.corrects - 1] if tl.corrects is not None else None
            values, entry = event_values(owner, i + 1, ev, tl, actor, at, corrected)
            events.append(EventRow(id=first + i + 1, **values))
            all_events.append(values)
            _record(out, entry)
        states = []
        for res in judgement.targets:
            values = state_values(res, data.pool, judgement.severity, policy.version, now)
            state = StateRow(ticket_id, res.target, **values)
            all_states.append({"ticket_id": ticket_id, "target": res.target, **values})
            out.deltas.count_state(state, +1)
            states.append(state)
            instant = wakes_at(state.status, state.deadline, state.risk_at)
            if instant is not None and (out.wake is None or instant < out.wake):
                out.wake = instant
        for late in breached(states).values():
            values = new_breach(ticket_id, data.pool, late, now)
            breach = SimpleNamespace(id=len(breaches), **values)  # (its id: `store`'s)
            out.deltas.count_breach(cast(Breach, breach), +1)
            out.breach_records.append(len(out.audit))
            _record(out, breach_entry(breach, "breach.detected", now), final=False)
            breaches.append(values)
        ticket = cast(Ticket, SimpleNamespace(**row))  # what the rules read of it
        facts = Facts(ticket, events, timeline, states, policy, now, ctx.tz, limits)
        for found in distinct(ticket_findings(facts)).values():
            findings.append(opened_row(found, ticket_id, data.pool, now))
        out.notices += notices_for_states(ctx, ticket, states, now, routing)
        if keep:
            out.judged.append(Judged(judgement, states, events))
    return out


def _record(out: Prepared, entry: audit.Entry, *, final: bool = True) -> None:
    """Add a record with its payload's text and, when its fields are `final` (a breach's
    id is not yet), its canonical head."""
    payload = entry.payload
    assert not isinstance(payload, JsonText)
    text = JsonText(audit.canonical(payload))
    head = None
    at = entry.at
    if final:
        head = audit.record_head(
            utc(at), entry.actor, entry.action, entry.entity, str(entry.entity_id)
        )
    # (made anew: `_replace` cost a twentieth of the instructions a batch spends a ticket)
    out.audit.append(
        audit.Entry(at, entry.actor, entry.action, entry.entity, entry.entity_id, text, head)
    )


def store(session: Session, ctx: SlaContext, prepared: Prepared, now: datetime) -> Stored:
    """Write the prepared rows in the session's transaction (its tickets' ids drawn for it,
    `draw_ids`): one statement a table, the events' and breaches' ids drawn as they go in
    (on PostgreSQL a few tickets' tables all in one, `insert_together`); the audit records
    join the chain in their order. The totals and the wake are the caller's
    (`WriteFlow.finish` applies them)."""
    ids = [ticket_id for ticket_id, _, _ in prepared.created]
    if on_sqlite(session) or isinstance(prepared.tickets, Bound):
        insert_tickets(session, prepared.tickets, ids, prepared.grams or None)
        event_ids = _insert_events(session, prepared.events)
        insert_rows(session, _STATES, prepared.states)
        insert_rows(session, _FINDINGS, prepared.findings)
        breach_ids = _insert_breaches(session, prepared.breaches)
    else:  # (PostgreSQL indexes the tickets' grams by its trigger)
        events = cast(list[dict[str, Any]], prepared.events)
        drawn = _draw_corrected(session, events)
        breaches = cast(list[dict[str, Any]], prepared.breaches)
        _, new_events, _, _, breach_ids = insert_together(
            session,
            [
                Part(TICKETS, prepared.tickets),
                Part(_EVENTS, events, returning=drawn is None),
                Part(_STATES, prepared.states),
                Part(_FINDINGS, prepared.findings),
                Part(_BREACHES, breaches, returning=True),
            ],
        )
        event_ids = new_events if drawn is None else drawn
    records = prepared.audit
    for at, breach_id in zip(prepared.breach_records, breach_ids, strict=True):
        records[at] = records[at]._replace(entity_id=str(breach_id))
    notices = enqueue(session, ctx, prepared.notices, now)
    audit.append_many(session, records)
    return Stored(event_ids, notices)


def _insert_breaches(session: Session, breaches: Rows) -> list[int]:
    """The new breaches, one statement; their ids in order (their audit records name
    them)."""
    if isinstance(breaches, Bound):
        if not breaches.rows:
            return []
        breach_ids = draw_ids(session, _BREACHES, len(breaches.rows))
        insert_bound(session, _BREACHES, breaches, breach_ids)
        return breach_ids
    return insert_returning_ids(session, _BREACHES, breaches) if breaches else []


def _insert_events(session: Session, events: list[dict[str, Any]] | Bound) -> list[int]:
    """The new events, one statement; their ids in order. A correction names the id of the
    event it corrects, an event of the same batch (its `corrects_id` its place, until
    then): the ids are drawn first (`_draw_corrected`). Otherwise a few rows' insert gives
    them (a POST's one statement)."""
    if isinstance(events, Bound):  # an import's chunk: always drawn first
        event_ids = draw_ids(session, _EVENTS, len(events.rows))
        at = events.names.index("corrects_id")
        for row in events.rows:
            if row[at] is not None:
                row[at] = event_ids[row[at] - 1]
        insert_bound(session, _EVENTS, events, event_ids)
        return event_ids
    drawn = _draw_corrected(session, events)
    if drawn is None:
        return insert_returning_ids(session, _EVENTS, events)
    insert_rows(session, _EVENTS, events)
    return drawn


def _draw_corrected(session: Session, events: list[dict[str, Any]]) -> list[int] | None:
    """Where one of the new events corrects another, every event's id drawn and set, and
    each correction's `corrects_id` (its target's place) made that event's id; else None
    (the insert gives the ids)."""
    if not any(e["corrects_id"] is not None for e in events):
        return None
    event_ids = draw_ids(session, _EVENTS, len(events))
    for e, event_id in zip(events, event_ids, strict=True):
        e["id"] = event_id
        if e["corrects_id"] is not None:
            e["corrects_id"] = event_ids[e["corrects_id"] - 1]
    return event_ids


@dataclass
class Stored:
    event_ids: list[int]  # in the order of `Prepared.events`
    notices: int  # new in the outbox
