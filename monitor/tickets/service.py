"""Tickets and their events: validate everything and write nothing on error; reading them back.

Writing events is only the first step of the write flow (`monitor.judging.flow`), which
judges the ticket in the same transaction."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlmodel import Session, col, select

from monitor.audit import service as audit
from monitor.breaches.findings import seeks as finding_seeks
from monitor.core.batch import (
    Bound,
    as_loaded,
    bound,
    driver_rows,
    insert_returning_ids,
    insert_rows,
    on_sqlite,
    rows_where,
    select_rows,
    unplanned,
)
from monitor.core.db import driver_of
from monitor.core.errors import InvalidInput, NotFound, Problem, TicketNotFound
from monitor.core.timeutil import iso, show
from monitor.evidence.models import EvidenceLink
from monitor.sla.models import TargetState
from monitor.sla.policy import Policy
from monitor.sla.service import SlaContext
from monitor.sla.timer import (
    LAST_OF,
    WHOLE,
    Effective,
    Judgement,
    Seek,
    TimelineEvent,
    apply_corrections,
    judge,
    seeks,
)
from monitor.sla.vocab import EVENT_TYPES
from monitor.tickets.models import (
    WITH_EVIDENCE_POSTGRES,
    WITH_EVIDENCE_SQLITE,
    Event,
    EventRow,
    StoredEvent,
    Ticket,
)
from monitor.tickets.schemas import (
    MAX_TICKETS_PER_BATCH,
    EventIn,
    EventOut,
    TargetOut,
    TicketIn,
    TicketOut,
)


@dataclass(frozen=True)
class Actor:
    """Who writes: a name, a role, where the write comes from, and the pool it is limited to."""

    name: str
    role: str
    source: str
    pool: str | None = None


SYSTEM = Actor("system", "admin", "system")
EVIDENCE_REF = "sha256:"


def ticket_events(session: Session, ticket_id: int) -> list[Event]:
    return list(
        session.exec(
            select(Event).where(Event.ticket_id == ticket_id).order_by(col(Event.seq))
        ).all()
    )


def event_rows(session: Session, ticket_id: int) -> list[EventRow]:
    """A ticket's events in order, as plain rows: what the write flow reads per write."""
    rows = rows_where(session, _EVENTS, EventRow._fields, "ticket_id", ticket_id, "seq")
    return list(map(EventRow._make, rows))


_EVENTS: sa.Table = Event.__table__  # type: ignore[attr-defined]

_LOCKED = "tickets.locked"  # session.info: (transaction, ids of the tickets it has locked)


def lock_ticket(session: Session, ticket_id: int) -> Ticket | None:
    """The ticket, locked for this transaction (FOR UPDATE on PostgreSQL; SQLite's writer holds
    the database), so two writers append one after the other, never with the same seq."""
    ticket = session.exec(_LOCK, params={"id": ticket_id}).one_or_none()
    if ticket is not None:
        transaction = _innermost(session)
        held: tuple[object, set[int]] | None = session.info.get(_LOCKED)
        if held is None or held[0] is not transaction:
            held = session.info[_LOCKED] = (transaction, set())
        held[1].add(ticket_id)
    return ticket


# Built once: `session.get(..., with_for_update=True)` built this query on every event
# (50 µs). As with `get`, a copy already in the session is returned as it is.
_LOCK = select(Ticket).where(Ticket.id == sa.bindparam("id")).with_for_update()


def _locked(session: Session, ticket_id: int) -> bool:
    held = session.info.get(_LOCKED)
    return held is not None and held[0] is _innermost(session) and ticket_id in held[1]


def _innermost(session: Session) -> object:
    # A lock taken in a savepoint goes when it rolls back: it is trusted only in its own.
    return session.get_nested_transaction() or session.get_transaction()


def events_of(session: Session, ticket_ids: Sequence[int]) -> dict[int, list[Event]]:
    """Many tickets' events in a few queries, each ticket's in order."""
    out: dict[int, list[Event]] = {}
    for chunk in range(0, len(ticket_ids), 500):
        rows = session.exec(
            select(Event)
            .where(col(Event.ticket_id).in_(ticket_ids[chunk : chunk + 500]))
            .order_by(col(Event.ticket_id), col(Event.seq))
        ).all()
        for e in rows:
            out.setdefault(e.ticket_id, []).append(e)
    return out


def timeline_of(events: Sequence[StoredEvent], held: Collection[int] = ()) -> list[TimelineEvent]:
    """The events as the SLA clock sees them; `held` corrections (by seq) are left out until
    the supervision unit accepts them."""
    by_id = {e.id: e for e in events}
    out = []
    for e in events:
        if e.seq in held:
            continue
        corrected = by_id.get(e.corrects_id) if e.corrects_id else None
        out.append(
            TimelineEvent(
                seq=e.seq,
                type=e.type,
                at=e.occurred_at,
                ref=f"#{e.seq}" + (f"({e.client_id})" if e.client_id else ""),
                severity=e.severity,
                corrects=corrected.seq if corrected else None,
                reason=e.reason,
            )
        )
    return out


def effective_timeline(
    events: Sequence[StoredEvent], held: Collection[int] = ()
) -> list[Effective]:
    """The ticket's events at their corrected times, in time order."""
    return apply_corrections(timeline_of(events, held))


def judge_ticket(
    ctx: SlaContext,
    ticket: Ticket,
    events: Sequence[StoredEvent],
    now: datetime | None = None,
    held: Collection[int] = (),
) -> Judgement:
    """The pure SLA clock over this ticket's events, at `now`."""
    policy = ctx.policies.version(ticket.policy_version)
    return judge(
        timeline_of(events, held), ticket.severity, policy, ctx.calendar, now or ctx.now(), ctx.tz
    )


def as_utc(at: datetime, ctx: SlaContext) -> datetime:
    """A time without an offset is read in the configured zone."""
    return (at.replace(tzinfo=ctx.tz) if at.tzinfo is None else at).astimezone(UTC)


def resolve_names(
    values: Sequence[str], known: dict[str, str], field: str, what: str
) -> tuple[list[str], list[Problem]]:
    out, problems = [], []
    for i, value in enumerate(values):
        key = known.get(value.strip())
        if key is None:
            problems.append(Problem(f"{field}[{i}]", f"unknown {what} {value!r}"))
        else:
            out.append(key)
    return out, problems


def name_lookup(ctx: SlaContext) -> tuple[dict[str, str], dict[str, str]]:
    units = {u.id: u.id for u in ctx.catalog.units} | {u.name: u.id for u in ctx.catalog.units}
    systems = {s.id: s.id for s in ctx.catalog.systems} | {
        s.name: s.id for s in ctx.catalog.systems
    }
    return units, systems


def _future_problem(at: datetime, ctx: SlaContext, loc: str) -> Problem | None:
    limit = ctx.now() + timedelta(seconds=ctx.settings.future_tolerance_seconds)
    if at > limit:
        return Problem(
            loc,
            f"{show(at, ctx.tz)} is in the future (the server's time is {show(ctx.now(), ctx.tz)})",
        )
    return None


def _event_problems(ev: EventIn, loc: str, ctx: SlaContext, policy: Policy | None) -> list[Problem]:
    problems = []
    future = _future_problem(as_utc(ev.at, ctx), ctx, f"{loc}.at")
    if future:
        problems.append(future)
    if ev.type == "severity_changed" and policy and ev.severity not in policy.severities:
        problems.append(
            Problem(
                f"{loc}.severity",
                f"unknown severity {ev.severity!r} (known: {', '.join(policy.severities)})",
            )
        )
    return problems


def _evidence_problems(
    session: Session | None, ticket_id: int | None, ev: EventIn, loc: str
) -> list[Problem]:
    """A stored-file reference must name a file already uploaded to this ticket (a new
    ticket, `ticket_id` None, has none: nothing is read)."""
    problems = []
    for i, ref in enumerate(ev.evidence):
        if not ref.startswith(EVIDENCE_REF):
            continue  # a link or an outside reference, kept as written
        sha = ref.removeprefix(EVIDENCE_REF)
        found = (
            ticket_id is not None
            and session is not None
            and session.exec(
                select(EvidenceLink.id).where(
                    EvidenceLink.ticket_id == ticket_id, EvidenceLink.sha256 == sha
                )
            ).first()
            is not None
        )
        if not found:
            problems.append(
                Problem(
                    f"{loc}.evidence[{i}]",
                    f"no file {ref} has been uploaded to this ticket (upload it "
                    "with POST /api/v1/tickets/{id}/evidence first)",
                )
            )
    return problems


def _order_problems(
    effective: list[Effective], locs: dict[int, str], ctx: SlaContext
) -> list[Problem]:
    """No event may come before the ticket's reported event (after corrections)."""
    reported = [x for x in effective if x.type == "reported"]
    if not reported:
        return []
    start = reported[0].at
    problems = []
    for x in effective:
        if x.at >= start or x.type == "reported":
            continue
        blame = x.corrections[-1].seq if x.corrections else x.event.seq
        if blame in locs:
            what = f"event {x.event.ref or x.event.seq} ({x.type})"
            problems.append(
                Problem(
                    f"{locs[blame]}.at",
                    f"{what} at {show(x.at, ctx.tz)} is before the ticket's "
                    f"reported time {show(start, ctx.tz)}",
                )
            )
        else:
            # An existing event now lies before a corrected reported time: blame that correction.
            blame = reported[0].corrections[-1].seq if reported[0].corrections else blame
            if blame in locs:
                problems.append(
                    Problem(
                        f"{locs[blame]}.at",
                        f"correcting reported to {show(start, ctx.tz)} would put "
                        f"event {x.event.ref} ({x.type}, {show(x.at, ctx.tz)}) "
                        "before it",
                    )
                )
    return problems


def _candidate_events(
    events: Sequence[EventIn],
    first_seq: int,
    existing: Sequence[StoredEvent],
    ctx: SlaContext,
    prefix: str,
) -> tuple[list[TimelineEvent], dict[int, str], list[Problem]]:
    """The timeline the new events would make, checking ids and correction targets."""
    problems: list[Problem] = []
    timeline = timeline_of(existing)
    ids: dict[str, TimelineEvent] = {}
    for old, tl in zip(existing, timeline, strict=True):
        ids[str(old.seq)] = tl
        ids[f"#{old.seq}"] = tl
        if old.client_id:
            ids[old.client_id] = tl
    client_ids = {e.client_id for e in existing if e.client_id}
    locs: dict[int, str] = {}
    for i, ev in enumerate(events):
        seq = first_seq + i
        loc = f"{prefix}[{i}]" if prefix else ""
        locs[seq] = loc or "event"
        where = f"{loc}." if loc else ""
        if ev.id is not None:
            if ev.id in client_ids:
                problems.append(
                    Problem(f"{where}id", f"event id {ev.id!r} is already used in this ticket")
                )
            client_ids.add(ev.id)
        corrects = None
        if ev.type == "correction":
            target = ids.get(ev.corrects or "")
            if target is None:
                problems.append(
                    Problem(
                        f"{where}corrects", f"no event {ev.corrects!r} in this ticket to correct"
                    )
                )
            elif target.type == "correction":
                problems.append(
                    Problem(
                        f"{where}corrects",
                        "a correction cannot be corrected; correct the original event again",
                    )
                )
            else:
                corrects = target.seq
        tl = TimelineEvent(
            seq=seq,
            type=ev.type,
            at=as_utc(ev.at, ctx),
            ref=f"#{seq}" + (f"({ev.id})" if ev.id else ""),
            severity=ev.severity,
            corrects=corrects,
            reason=ev.reason,
        )
        timeline.append(tl)
        ids[str(seq)] = tl
        ids[f"#{seq}"] = tl
        if ev.id:
            ids[ev.id] = tl
    return timeline, locs, problems


class NewTicketCheck(NamedTuple):
    """A new ticket's problems but for its external id's (`new_ticket_problems`), where the
    id's problem goes among them, and what the check made for the write to reuse: the
    policy in force and the timeline its events make, with its corrected form."""

    policy: Policy | None
    problems: list[Problem]
    id_at: int
    timelines: tuple[list[TimelineEvent], list[Effective]]


def check_new_ticket(
    session: Session,
    ctx: SlaContext,
    data: TicketIn,
    actor: Actor,
    taken: set[tuple[str, str]] | None = None,
    existing: set[tuple[str, str]] | None = None,
) -> tuple[Policy | None, list[Problem], tuple[list[TimelineEvent], list[Effective]]]:
    """Every problem with a new ticket (locations relative to the ticket); writes nothing.
    `existing`: the ids already held, when the caller looked them up for a whole batch.
    Also the timeline its events make and its corrected form, for the write to reuse."""
    checked = new_ticket_problems(ctx, data, actor)
    problem = id_problem(session, (data.pool, data.external_id), actor, taken, existing)
    problems = with_id_problem(checked, problem)
    return checked.policy, problems, checked.timelines


def with_id_problem(checked: NewTicketCheck, problem: Problem | None) -> list[Problem]:
    """The ticket's problems with its external id's in its place."""
    if problem is None:
        return checked.problems
    return [*checked.problems[: checked.id_at], problem, *checked.problems[checked.id_at :]]


def id_problem(
    session: Session | None,
    key: tuple[str, str | None],
    actor: Actor,
    taken: set[tuple[str, str]] | None = None,
    existing: Collection[tuple[str, str]] | None = None,
) -> Problem | None:
    """What is wrong with a new ticket's (pool, external id): it appears twice in this input
    (`taken`, the ids met so far, to which it is added), or its pool already has it
    (`existing`, when the caller looked them up for a whole batch; else read here)."""
    pool, external_id = key
    # Another pool's ids are not looked up: the answer must not tell what that pool holds.
    if external_id is None or (actor.pool is not None and pool != actor.pool):
        return None
    held = (pool, external_id)
    problem = None
    if taken is not None and held in taken:
        problem = Problem("external_id", f"{external_id!r} appears twice for {pool} in this input")
    elif (held in existing) if existing is not None else _held(session, held):
        problem = Problem(
            "external_id", f"{pool} already has a ticket with external_id {external_id!r}"
        )
    if taken is not None:
        taken.add(held)
    return problem


def _held(session: Session | None, key: tuple[str, str]) -> bool:
    assert session is not None  # (a caller without one looked the ids up)
    query = select(Ticket.id).where(Ticket.pool == key[0], Ticket.external_id == key[1])
    return session.exec(query).first() is not None


def new_ticket_problems(
    ctx: SlaContext,
    data: TicketIn,
    actor: Actor,
    names: tuple[dict[str, str], dict[str, str]] | None = None,
) -> NewTicketCheck:
    """Every problem with a new ticket but its external id's, which only the database can
    tell (`id_problem`): reads nothing, so an import's worker processes check their rows.
    `names`: `name_lookup(ctx)`, when the caller checks a batch."""
    problems: list[Problem] = []
    foreign = actor.pool is not None and data.pool != actor.pool
    if ctx.catalog.pool(data.pool) is None:
        problems.append(
            Problem(
                "pool", f"unknown pool {data.pool!r} (known: {', '.join(ctx.catalog.pool_ids)})"
            )
        )
    elif foreign:
        problems.append(
            Problem("pool", f"an operator of {actor.pool} cannot write tickets of {data.pool}")
        )
    id_at = len(problems)
    units, systems = names or name_lookup(ctx)
    problems += resolve_names(data.units, units, "units", "user unit")[1]
    problems += resolve_names(data.systems, systems, "systems", "business system")[1]

    reported = [i for i, e in enumerate(data.events) if e.type == "reported"]
    policy = None
    if len(reported) != 1:
        problems.append(
            Problem("events", f"a ticket needs exactly one reported event (found {len(reported)})")
        )
    else:
        reported_at = as_utc(data.events[reported[0]].at, ctx)
        on = reported_at.astimezone(ctx.tz).date()
        policy = ctx.policies.in_force(on)
        if policy is None:
            problems.append(
                Problem(
                    f"events[{reported[0]}].at", f"no SLA policy is in force on {on.isoformat()}"
                )
            )
        elif data.severity not in policy.severities:
            problems.append(
                Problem(
                    "severity",
                    f"unknown severity {data.severity!r} (known: {', '.join(policy.severities)})",
                )
            )
    for i, ev in enumerate(data.events):
        problems += _event_problems(ev, f"events[{i}]", ctx, policy)
        problems += _evidence_problems(None, None, ev, f"events[{i}]")
    timeline, locs, id_problems = _candidate_events(data.events, 1, [], ctx, "events")
    problems += id_problems
    effective = apply_corrections(timeline)
    problems += _order_problems(effective, locs, ctx)
    return NewTicketCheck(policy, problems, id_at, (timeline, effective))


class Owner(NamedTuple):
    """What an event's row and audit record take from its ticket, read from the ticket once
    (each field of an ORM object is a descriptor call) rather than once an event."""

    id: int
    entity_id: str
    pool: str
    external_id: str | None

    @classmethod
    def of(cls, ticket: Ticket) -> Owner:
        assert ticket.id is not None
        return cls(ticket.id, str(ticket.id), ticket.pool, ticket.external_id)


def event_values(
    owner: Owner,
    seq: int,
    ev: EventIn,
    tl: TimelineEvent,
    actor: Actor,
    recorded_at: datetime,
    corrected: StoredEvent | None,
) -> tuple[dict[str, Any], audit.Entry]:
    """An event's row and its audit record."""
    values = {
        "ticket_id": owner.id,
        "seq": seq,
        "client_id": ev.id,
        "type": ev.type,
        "occurred_at": tl.at,
        "recorded_at": recorded_at,
        "actor": actor.name,
        "actor_role": actor.role,
        "source": actor.source,
        "note": ev.note,
        "evidence": list(ev.evidence),
        "severity": ev.severity,
        "corrects_id": corrected.id if corrected else None,
        "reason": ev.reason,
    }
    entry = audit.Entry(
        at=recorded_at,
        actor=actor.name,
        action="event.recorded",
        entity="ticket",
        entity_id=owner.entity_id,
        payload={
            "pool": owner.pool,
            "external_id": owner.external_id,
            "seq": seq,
            "event_id": ev.id,
            "type": ev.type,
            "at": tl.at.isoformat(),
            "recorded_at": recorded_at.isoformat(),
            "source": actor.source,
            "role": actor.role,
            "severity": ev.severity,
            "corrects": corrected.seq if corrected else None,
            "reason": ev.reason,
            "note": ev.note,
            "evidence": list(ev.evidence),
        },
    )
    return values, entry


class InvalidTickets(InvalidInput):
    """Problems with some tickets of a batch (`each[i]`: the i-th ticket's, located within
    it); nothing was written."""

    def __init__(self, each: list[list[Problem]]) -> None:
        self.each = each
        super().__init__([p for problems in each for p in problems])


def taken_ids(session: Session, keys: Collection[tuple[str, str | None]]) -> set[tuple[str, str]]:
    """The (pool, external id) pairs of `keys` (new tickets') that tickets already hold:
    one query.

    On PostgreSQL the pairs are locked first, for the transaction (`_lock_ids`): two writers
    creating the same ticket at once (two replicas, a retry under a new key) would both find
    it free and the second would fail on the unique index with a 500; now the second waits,
    then finds the first's ticket and is refused by name. (SQLite's writers take turns
    already.)"""
    wanted = {(p, e) for p, e in keys if e is not None}
    found: set[tuple[str, str]] = set()
    ids = sorted({e for _, e in wanted})
    if wanted and not on_sqlite(session):
        _lock_ids(session, wanted)
    if len(ids) == 1:  # a POST: an expanding IN is rendered anew at every execution
        rows = driver_rows(session, _TAKEN_ONE, ids[0])
        return {(p, e) for p, e in rows if (p, e) in wanted}
    for i in range(0, len(ids), 500):
        rows = unplanned(session, _TAKEN, {"ids": ids[i : i + 500]})
        found |= {(p, e) for p, e in rows if e is not None and (p, e) in wanted}
    return found


def _lock_ids(session: Session, wanted: set[tuple[str, str]]) -> None:
    """Lock each new (pool, external id) for the transaction, after sharing the creators'
    lock; or, when a transaction's first ids are more than `MAX_ID_LOCKS` (an import's
    chunk), take the creators' lock alone, so that no other writer creates a ticket until it
    commits: PostgreSQL keeps every lock in one table (`max_locks_per_transaction` times
    the connections), and an import of 20,000 tickets locking each ran out of it and failed.
    A shared lock is never made exclusive later: that would wait for every other creator
    while holding what they wait for (a deadlock). Keyed on the innermost transaction: a
    savepoint's rollback releases the locks taken in it. One statement: the creators' lock
    (the first time), then the ids'."""
    count = _ids_locked(session)
    if count == ALL_IDS:
        return
    if count == 0 and len(wanted) > MAX_ID_LOCKS:
        lock_creation(session)
        return
    keys = [f"{p}\x1f{e}" for p, e in wanted]
    # Before any id's lock: a writer waiting for one of them holds none of them.
    driver_rows(session, _LOCK_IDS, count == 0, keys)
    session.info[_ID_LOCKS] = (_innermost(session), count + len(keys))


def lock_creation(session: Session) -> None:
    """On PostgreSQL, hold the creation of tickets by every other writer until this
    transaction ends (an import does, before it writes anything). Nothing, once this
    transaction has locked ids of its own, or on SQLite, whose writers take turns."""
    if on_sqlite(session):
        return
    if _ids_locked(session) != 0:
        return  # ids locked already (shared), or creation already held
    driver_rows(session, _LOCK_ALL)
    session.info[_ID_LOCKS] = (_innermost(session), ALL_IDS)


def _ids_locked(session: Session) -> int:
    """How many ids this transaction (or savepoint) has locked, or `ALL_IDS`."""
    held: tuple[object, int] | None = session.info.get(_ID_LOCKS)
    return held[1] if held is not None and held[0] is _innermost(session) else 0


_TICKETS: sa.Table = Ticket.__table__  # type: ignore[attr-defined]
_TAKEN = sa.select(_TICKETS.c.pool, _TICKETS.c.external_id).where(
    _TICKETS.c.external_id.in_(sa.bindparam("ids", expanding=True))
)
# Advisory locks of two 32-bit keys: this space, and a hash of "pool<US>external id" (a
# shared hash only makes two writers wait for each other), taken in the order of the hashes
# so that two single calls never deadlock. Beside it, the creators' lock (its own space,
# key 0): shared by every writer that locks ids, exclusive for an import; always taken
# before the audit chain's lock (a key of 64 bits, a space of its own), which a write takes
# as it commits and an import once 5,000 records wait.
ID_LOCK_SPACE = 1318
CREATORS_LOCK_SPACE = 1319
MAX_ID_LOCKS = MAX_TICKETS_PER_BATCH  # a batch's worth
ALL_IDS = -1
_ID_LOCKS = "tickets.id_locks"
# The ids' locks in the order of their hashes, after the creators' shared lock when the first
# parameter is true (its row, NULL, sorts first; the locks are taken as the rows come).
_LOCK_IDS = (
    f"SELECT CASE WHEN h IS NULL THEN pg_advisory_xact_lock_shared({CREATORS_LOCK_SPACE}, 0) "
    f"ELSE pg_advisory_xact_lock({ID_LOCK_SPACE}, h) END FROM "
    "(SELECT NULL::integer AS h WHERE CAST(? AS boolean) UNION ALL "
    "SELECT DISTINCT hashtext(k) FROM unnest(CAST(? AS text[])) AS k ORDER BY 1 NULLS FIRST) AS s"
)
_LOCK_ALL = f"SELECT pg_advisory_xact_lock({CREATORS_LOCK_SPACE}, 0)"
_TAKEN_ONE = "SELECT pool, external_id FROM tickets WHERE external_id = ?"


# The search grams of a batch of new tickets on SQLite, in one statement after their insert:
# the trigger's write to FTS5 for each ticket cost 95 µs a ticket (migration f7d3b9a2c461).
_INDEX_GRAMS = (
    "INSERT INTO ticket_grams (rowid, grams) SELECT id, "
    "slamon_grams(external_id, title, description) FROM tickets WHERE id BETWEEN ? AND ?"
)
_GRAMS = "INSERT INTO ticket_grams (rowid, grams) VALUES (?, ?)"


def insert_tickets(
    session: Session,
    tickets: list[dict[str, Any]] | Bound,
    ids: Sequence[int],
    grams: list[str] | None = None,
) -> None:
    """Insert new tickets (as dicts, or bound ahead) with their `ids`, drawn already
    (`draw_ids`; on SQLite a batch's are one range, drawn after the largest with the write
    lock held). The database indexes their search grams: by its trigger, but on SQLite a
    batch turns the trigger off and indexes itself at once, or stores the `grams` given
    (`fts_document` of each ticket, which an import's worker processes make)."""
    if len(ids) == 1 or not on_sqlite(session):
        insert_rows(session, _TICKETS, tickets)
        return
    driver = driver_of(session)
    driver.execute("SELECT slamon_grams_by_trigger(0)")
    try:
        insert_rows(session, _TICKETS, tickets)
    finally:
        driver.execute("SELECT slamon_grams_by_trigger(1)")
    if grams is not None:
        driver.executemany(_GRAMS, list(zip(ids, grams, strict=True)))
        return
    assert ids[-1] - ids[0] + 1 == len(ids)
    driver.execute(_INDEX_GRAMS, (ids[0], ids[-1]))


def created_entry(ticket: dict[str, Any]) -> audit.Entry:
    """The audit record of a new ticket's row."""
    return audit.Entry(
        at=ticket["created_at"],
        actor=ticket["created_by"],
        action="ticket.created",
        entity="ticket",
        entity_id=str(ticket["id"]),
        payload={
            "pool": ticket["pool"],
            "external_id": ticket["external_id"],
            "severity": ticket["severity"],
            "title": ticket["title"],
            "source": ticket["source"],
            "policy_version": ticket["policy_version"],
            "units": ticket["units"],
            "systems": ticket["systems"],
        },
    )


@dataclass(frozen=True)
class Appended:
    """An appended event and the ticket's timeline after it, read and corrected once."""

    row: Event
    events: list[StoredEvent]
    seen: list[TimelineEvent]  # `timeline_of(events)`: as the clock sees them, none held
    effective: list[Effective]  # `apply_corrections(seen)`
    # False: `events` are only those the rules turn on (a ticket without corrections, read
    # by index); they judge as the whole timeline does, but are not the whole to show.
    complete: bool = True


def append_event(
    session: Session,
    ctx: SlaContext,
    ticket: Ticket,
    data: EventIn,
    actor: Actor,
    *,
    recorded_at: datetime | None = None,
) -> Appended:
    """Append one event (not yet judged), or raise InvalidInput naming the field; returns it
    and the ticket's timeline, read once (as plain rows): the whole of it for a short ticket
    (`READ_WHOLE_UP_TO`), a ticket with corrections or a correction, else only the events
    the rules turn on (a partial timeline, read by index: an append costs the same however
    long the ticket is)."""
    assert ticket.id is not None
    if not _locked(session, ticket.id):  # (a request's dependency locked it already)
        lock_ticket(session, ticket.id)
    policy = ctx.policies.version(ticket.policy_version)
    existing: list[StoredEvent] = _first_events(session, ticket.id)
    complete = True
    if len(existing) > READ_WHOLE_UP_TO:  # (else that is the whole timeline)
        if data.type != "correction":
            existing = _partial_timeline(session, ticket.id, data.id)
            complete = any(e.type == "correction" for e in existing)
        if complete:
            existing = list(event_rows(session, ticket.id))
    # (seqs number a ticket's events 1..n: its last seq is how many there are)
    count = existing[-1].seq if existing else 0
    problems = _event_problems(data, "", ctx, policy)
    problems += _evidence_problems(session, ticket.id, data, "")
    problems = [Problem(p.loc.lstrip("."), p.msg) for p in problems]
    if data.type == "reported":
        problems.append(
            Problem(
                "type",
                "the ticket is already reported; to fix its time, send "
                "a correction naming the reported event",
            )
        )
    seq = count + 1
    limit = ctx.settings.max_events_per_ticket
    if count >= limit:
        problems.append(
            Problem(
                "type",
                f"this ticket already has {count} events, the limit "
                f"(SLAMON_MAX_EVENTS_PER_TICKET = {limit}); open a new ticket for a new fault",
            )
        )
    timeline, _, id_problems = _candidate_events([data], seq, existing, ctx, "")
    effective = apply_corrections(timeline)
    problems += id_problems
    problems += [
        Problem(p.loc.removeprefix("event."), p.msg)
        for p in _order_problems(effective, {seq: "event"}, ctx)
    ]
    if problems:
        raise InvalidInput(problems)
    if not complete:
        # What the rules turn on beyond the first and last events: read before the new
        # event is stored (which joins the part in any case).
        wanted = seeks(effective, ticket.severity, policy) + finding_seeks(effective)
        existing = _with_seeks(session, ticket.id, existing, wanted)
        timeline = [*timeline_of(existing), timeline[-1]]
        effective = apply_corrections(timeline)
    now = ctx.now()
    tl = timeline[-1]
    corrected = {e.seq: e for e in existing}.get(tl.corrects) if tl.corrects else None
    owner = Owner.of(ticket)
    values, entry = event_values(owner, seq, data, tl, actor, recorded_at or now, corrected)
    # By one INSERT, as new tickets' events go in: the ORM's flush cost more than the insert.
    (event_id,) = insert_returning_ids(session, _EVENTS, [values])
    (row,) = as_loaded(session, Event, [{"id": event_id, **values}])
    audit.append_many(session, [entry])
    ticket.updated_at = now
    return Appended(row, [*existing, row], timeline, effective, complete)


# A ticket of at most this many events is read whole by one plain read, which costs less
# than the seeks of a partial timeline (an event on a 4-event ticket cost 9 % more
# instructions by the seeks); a longer one is read by the seeks.
READ_WHOLE_UP_TO = 32


def _first_events(session: Session, ticket_id: int) -> list[StoredEvent]:
    """The ticket's first events by seq, one more than `READ_WHOLE_UP_TO` at most."""
    rows = rows_where(
        session, _EVENTS, EventRow._fields, "ticket_id", ticket_id, "seq", READ_WHOLE_UP_TO + 1
    )
    return list(map(EventRow._make, rows))


def _select(where: str, order: str = "occurred_at, seq", limit: bool = True) -> str:
    # Each part its own subquery: a compound's parts may not have their own ORDER BY.
    tail = " LIMIT 1" if limit else ""
    return (
        f"SELECT * FROM (SELECT {{columns}} FROM {{table}} WHERE ticket_id = ? AND {where} "
        f"ORDER BY {order}{tail}) AS part"
    )


# The part of a timeline that every append reads (by the index on ticket, type, time and
# seq, and the unique ones on seq and client id): the first event of each type, the last of
# each resolution kind, every pause, resume and severity change, the last by seq (how many
# events there are), and the event the new one's client id would repeat.
_PARTIAL = " UNION ALL ".join(
    [
        *(_select(f"type = '{t}'") for t in EVENT_TYPES if t not in WHOLE),
        *(_select(f"type = '{t}'", "occurred_at DESC, seq DESC") for t in LAST_OF),
        _select("type IN ({})".format(", ".join(f"'{t}'" for t in WHOLE)), limit=False),
        _select("1 = 1", "seq DESC"),
        _select("client_id = ?", "seq"),
    ]
)


_PARTS = _PARTIAL.count("?") - 1  # each part's ticket, then the client id


def _partial_timeline(session: Session, ticket_id: int, client_id: str | None) -> list[StoredEvent]:
    params = [ticket_id] * _PARTS + [client_id]
    return _distinct(select_rows(session, _EVENTS, EventRow._fields, _PARTIAL, params))


def _with_seeks(
    session: Session, ticket_id: int, part: list[StoredEvent], wanted: Sequence[Seek]
) -> list[StoredEvent]:
    """The part with the events each seek finds (each by one index range, in one statement)."""
    if not wanted:
        return part
    # The partial index's own predicate, which a query must repeat for the index to serve it.
    evidence = (WITH_EVIDENCE_SQLITE if on_sqlite(session) else WITH_EVIDENCE_POSTGRES).text
    parts, params = [], []
    for seek in wanted:
        kind = "type = ?" if seek.type is not None else evidence
        parts.append(_select(f"{kind} AND occurred_at >= ? AND (occurred_at > ? OR seq > ?)"))
        at = bound(session, _EVENTS, "occurred_at", seek.at)
        params += [ticket_id, *([seek.type] if seek.type is not None else []), at, at, seek.seq]
    sql = " UNION ALL ".join(parts)
    found = select_rows(session, _EVENTS, EventRow._fields, sql, params)
    return _distinct([*part, *found])


def _distinct(rows: Sequence[Any]) -> list[StoredEvent]:
    """Rows read by several parts of one statement, each once, in seq order."""
    by_seq = {r[_SEQ]: r for r in rows}
    return [EventRow._make(by_seq[seq]) for seq in sorted(by_seq)]


_SEQ = EventRow._fields.index("seq")


def find_ticket(session: Session, ref: str, pool: str | None = None) -> Ticket:
    """A ticket by id, external id, or POOL:EXTERNAL_ID; another pool's is not found."""
    ref = ref.strip()
    query = select(Ticket)
    if pool is not None:
        query = query.where(Ticket.pool == pool)
    found: Sequence[Ticket] = []
    if ref.isdigit() and len(ref) <= 9:
        found = session.exec(query.where(Ticket.id == int(ref))).all()
    if not found:
        ref_pool, _, ext = ref.partition(":")
        if ext and ref_pool:
            found = session.exec(
                query.where(Ticket.pool == ref_pool, Ticket.external_id == ext)
            ).all()
        if not found:
            found = session.exec(query.where(Ticket.external_id == ref)).all()
    if not found:
        raise TicketNotFound(f"no ticket {ref!r}")
    if len(found) > 1:
        names = ", ".join(f"{t.pool}:{t.external_id}" for t in found)
        raise NotFound(f"{ref!r} names several tickets ({names}); write POOL:EXTERNAL_ID")
    return found[0]


def events_out(events: Sequence[StoredEvent], tz: tzinfo) -> list[EventOut]:
    """The timeline as people and clients read it: each event as recorded, and its time
    after corrections where one changed it."""
    by_id = {e.id: e for e in events}
    # Only a corrected event's time moves: a timeline without corrections (most) is not
    # replayed for the answer (that was half of building it).
    effective = (
        {x.event.seq: x.at for x in effective_timeline(events) if x.corrections}
        if any(e.corrects_id for e in events)
        else {}
    )

    def event_id(e: StoredEvent) -> str:
        return e.client_id or str(e.seq)

    return [
        EventOut(
            id=event_id(e),
            seq=e.seq,
            type=e.type,
            at=iso(e.occurred_at, tz) or "",
            recorded_at=iso(e.recorded_at, tz) or "",
            actor=e.actor,
            role=e.actor_role,
            source=e.source,
            note=e.note,
            evidence=e.evidence,
            severity=e.severity,
            corrects=event_id(by_id[e.corrects_id]) if e.corrects_id in by_id else None,
            reason=e.reason,
            corrected_at=iso(effective[e.seq], tz)
            if e.seq in effective and effective[e.seq] != e.occurred_at
            else None,
        )
        for e in events
    ]


SHOWN_STATE = (
    "target",
    "name",
    "status",
    "start",
    "deadline",
    "stop",
    "elapsed_seconds",
    "overrun_seconds",
    "paused_seconds",
    "calendar",
    "duration",
    "explain",
)


def ticket_out(
    session: Session,
    ctx: SlaContext,
    ticket: Ticket,
    judged: tuple[Sequence[StoredEvent] | None, Sequence[Any]] | None = None,
) -> TicketOut:
    """A ticket as the API shows it; `judged`: its events (None: read them) and target
    states as the write that just judged it holds them (else they are read)."""
    assert ticket.id is not None
    if judged is not None:
        held, states = judged
        events = event_rows(session, ticket.id) if held is None else held
    else:
        events = event_rows(session, ticket.id)
        # Plain rows of the columns shown: an ORM TargetState costs more to build than read.
        shown = sa.select(*(col(getattr(TargetState, name)) for name in SHOWN_STATE))
        states = session.execute(shown.where(col(TargetState.ticket_id) == ticket.id)).all()
    tz = ctx.tz

    return TicketOut(
        id=ticket.id,
        external_id=ticket.external_id,
        pool=ticket.pool,
        severity=ticket.severity,
        current_severity=ticket.current_severity,
        title=ticket.title,
        description=ticket.description,
        source=ticket.source,
        units=ticket.units,
        systems=ticket.systems,
        status=ticket.status,
        policy_version=ticket.policy_version,
        reported_at=iso(ticket.reported_at, tz) or "",
        created_at=iso(ticket.created_at, tz) or "",
        updated_at=iso(ticket.updated_at, tz) or "",
        events=events_out(events, tz),
        targets=[
            TargetOut(
                id=s.target,
                name=s.name,
                status=s.status,
                start=iso(s.start, tz),
                deadline=iso(s.deadline, tz),
                stop=iso(s.stop, tz),
                elapsed_seconds=s.elapsed_seconds,
                overrun_seconds=s.overrun_seconds,
                paused_seconds=s.paused_seconds,
                calendar=s.calendar,
                duration=s.duration,
                explain=s.explain,
            )
            for s in sorted(states, key=lambda s: target_order(ctx, ticket, s.target))
        ],
    )


def target_order(ctx: SlaContext, ticket: Ticket, target: str) -> int:
    """A target's place in its severity's policy, so every listing shows them in that order."""
    targets = ctx.policies.version(ticket.policy_version).severities[ticket.current_severity]
    ids = [t.id for t in targets.targets]
    return ids.index(target) if target in ids else len(ids)


def count_tickets(session: Session) -> int:
    return session.exec(select(sa.func.count()).select_from(Ticket)).one()
