"""The write flow: everything that follows when a ticket's events change, or when time
passes one of its deadlines, in the transaction that caused it.

    events written → judge (pure clock) → target states → breaches → findings → notices
    → metric totals → wake the scheduler (and the notice sender)

It reads a ticket's events once per write and hands them down. Totals and the wake are
applied once per unit of work, in `finish`, so that a transaction touching many tickets
(an import, a sweep) writes its totals in key order and concurrent writers never deadlock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from datetime import datetime
from typing import Any, BinaryIO

import sqlalchemy as sa
from sqlmodel import Session, select

from monitor.breaches.findings import Facts, Thresholds, sync_findings, ticket_findings
from monitor.breaches.models import Breach, BreachReview, CorrectionDecision
from monitor.breaches.service import (
    check_decision,
    correction_states,
    held_corrections,
    record_correction_state,
    review_breach,
    sync_breaches,
)
from monitor.core import wake
from monitor.core.batch import (
    as_loaded,
    collector_paused,
    draw_ids,
    expire_loaded,
    insert_rows,
    update_rows,
)
from monitor.core.errors import InvalidInput
from monitor.evidence import service as evidence
from monitor.evidence.models import EvidenceLink
from monitor.judging import new_tickets
from monitor.metrics.totals import Deltas
from monitor.notifications.service import enqueue_for_states
from monitor.sla.models import JudgedState, StateRow, TargetState
from monitor.sla.service import SlaContext, state_values
from monitor.sla.timer import (
    Effective,
    Judgement,
    TimelineEvent,
    apply_corrections,
    judge,
    wakes_at,
)
from monitor.sla.vocab import HELD, CorrectionState, Review, TargetStatus
from monitor.sla.words import words
from monitor.tickets.models import Event, StoredEvent, Ticket
from monitor.tickets.schemas import MAX_TICKETS_PER_BATCH, EventIn, TicketIn
from monitor.tickets.service import (
    Actor,
    InvalidTickets,
    append_event,
    effective_timeline,
    event_rows,
    id_problem,
    judge_ticket,
    taken_ids,
    timeline_of,
    with_id_problem,
)

# Tickets in one create_tickets above which the cycle collector waits (see there): never a
# request's batch.
PAUSE_COLLECTOR_ABOVE = MAX_TICKETS_PER_BATCH


@dataclass
class Settled:
    """What one ticket's judgement changed."""

    ticket: Ticket
    judgement: Judgement
    states: list[JudgedState]
    before: dict[str, TargetStatus]  # each target's status before this judgement
    events: Sequence[StoredEvent] = ()  # the timeline it was judged by
    complete: bool = True  # False: `events` are a partial timeline (`Appended.complete`)

    def changed(self) -> list[tuple[str, str, str]]:
        """(target, before, after) for every target whose status moved."""
        return [
            (s.target, self.before.get(s.target, "—"), s.status)
            for s in self.states
            if self.before.get(s.target) != s.status
        ]


class WriteFlow:
    """One unit of work's writes to tickets; `finish` before the transaction commits."""

    def __init__(self, session: Session, ctx: SlaContext) -> None:
        self.session, self.ctx = session, ctx
        self.deltas = Deltas()
        self.wake_at: datetime | None = None
        self.notices = 0  # written to the outbox in this unit of work
        self.limits = Thresholds.of(ctx.settings)
        self.last: Settled | None = None  # the latest ticket judged (what a reply shows)
        # Each new ticket's judgement, when `create_tickets` is asked to keep them all.
        self.each: list[Settled] = []

    # Writes ------------------------------------------------------------------------------
    def create_ticket(
        self,
        data: TicketIn,
        actor: Actor,
        *,
        recorded_at: Sequence[datetime] | None = None,
        taken: set[tuple[str, str]] | None = None,
    ) -> Ticket:
        """A new ticket with its events, judged at once; or InvalidInput, writing nothing."""
        try:
            (ticket,) = self.create_tickets([data], actor, recorded_at=[recorded_at], taken=taken)
        except InvalidTickets as exc:
            raise InvalidInput(exc.each[0]) from None
        return ticket

    def create_tickets(
        self,
        batch: Sequence[TicketIn],
        actor: Actor,
        *,
        recorded_at: Sequence[Sequence[datetime] | None] | None = None,
        taken: set[tuple[str, str]] | None = None,
        keep_each: bool = False,
    ) -> list[Ticket]:
        """New tickets with their events, each judged at once; or InvalidTickets naming
        each bad one's problems, writing nothing (`taken`: the external ids met so far in
        this input, to which theirs are added). One statement a table for the whole batch
        (`judging.new_tickets`)."""
        to_codes = words(self.ctx).ticket_in
        batch = [to_codes(data) for data in batch]
        # A large batch keeps its objects until it ends: the collector waits. A request's
        # few tickets leave it be: pausing it for a POST /tickets/batch of ten cost 10-20 %
        # of its throughput (bench.run, back to back), the collection then falling on
        # whatever ran next.
        paused = collector_paused() if len(batch) > PAUSE_COLLECTOR_ABOVE else nullcontext()
        with paused:
            keys = [(d.pool, d.external_id) for d in batch]
            existing = taken_ids(self.session, keys)
            checks = new_tickets.check(self.ctx, batch, actor)
            taken = set() if taken is None else taken  # two with one id: the second is refused
            each = [
                with_id_problem(checked, id_problem(None, key, actor, taken, existing))
                for key, checked in zip(keys, checks, strict=True)
            ]
            if any(each):
                raise InvalidTickets(each)
            ids = draw_ids(self.session, new_tickets.TICKETS, len(batch))
            now = self.ctx.now()
            prepared = new_tickets.prepare(
                self.ctx, batch, checks, actor, ids, now, recorded_at, keep=True
            )
            stored = self.store(prepared, now)
            tickets = as_loaded(self.session, Ticket, prepared.ticket_rows())
        # What a reply shows of the last one (`keep_each`: of each): its judgement, states
        # and events (their ids).
        ids = stored.event_ids
        shown = range(len(tickets)) if keep_each else [len(tickets) - 1]
        self.each = []
        for i in shown:
            judged = prepared.judged[i]
            events = [
                e._replace(id=ids[e.id - 1], corrects_id=e.corrects_id and ids[e.corrects_id - 1])
                for e in judged.events
            ]
            self.each.append(Settled(tickets[i], judged.judgement, list(judged.states), {}, events))
        self.last = self.each[-1]
        return tickets

    def store(self, prepared: new_tickets.Prepared, now: datetime) -> new_tickets.Stored:
        """Write new tickets' prepared rows in this unit of work (their totals, notices and
        wake with its own)."""
        stored = new_tickets.store(self.session, self.ctx, prepared, now)
        self.deltas.merge(prepared.deltas)
        self._wake(prepared.wake)
        self.notices += stored.notices
        return stored

    def add_event(
        self, ticket: Ticket, data: EventIn, actor: Actor, *, recorded_at: datetime | None = None
    ) -> Event:
        """Append one event (or a correction) and re-judge the ticket."""
        data = words(self.ctx).event_in(data)
        done = append_event(self.session, self.ctx, ticket, data, actor, recorded_at=recorded_at)
        row, events = done.row, done.events
        if row.type == "correction" and actor.role != "supervisor":
            self._dispute_if_it_clears_a_review(ticket, row, events)
        self.settle(ticket, events, timelines=(done.seen, done.effective), complete=done.complete)
        return row

    def decide_correction(
        self, ticket: Ticket, seq: int, decision: str, reason: str, reviewer: str
    ) -> CorrectionDecision:
        """The supervision unit accepts (the clock uses it from now on) or rejects (it never
        does) a correction that would have cleared a reviewed breach."""
        state = check_decision(self.session, ticket, seq, decision, reason, reviewer)
        row = record_correction_state(
            self.session, ticket, seq, state, reason.strip(), reviewer, self.ctx.now()
        )
        self.rejudge(ticket)
        return row

    def _dispute_if_it_clears_a_review(
        self, ticket: Ticket, row: Event, events: Sequence[StoredEvent]
    ) -> None:
        """A correction by the evaluated party that would clear a breach the supervision unit
        already reviewed is held until the unit decides (the evaluation found supervisors
        copying the operator's figures: the operator must not overturn a review alone)."""
        assert ticket.id is not None
        reviewed = [
            b
            for b in self.session.exec(select(Breach).where(Breach.ticket_id == ticket.id)).all()
            if b.cleared_at is None and b.review != Review.PENDING
        ]
        if not reviewed:
            return
        held = held_corrections(self.session, [ticket.id]).get(ticket.id, set())
        after = judge_ticket(self.ctx, ticket, events, held=held)
        still = {t.target for t in after.targets if t.status == TargetStatus.BREACHED}
        overturned = [b for b in reviewed if b.target not in still]
        if overturned:
            names = "、".join(f"{b.target}（{b.review}）" for b in overturned)
            record_correction_state(
                self.session,
                ticket,
                row.seq,
                CorrectionState.DISPUTED,
                f"会撤销监理单位已审核的超时：{names}",
                "system",
                self.ctx.now(),
            )

    def attach_evidence(
        self,
        ticket: Ticket,
        stream: BinaryIO,
        *,
        media_type: str,
        filename: str,
        note: str,
        actor: Actor,
    ) -> EvidenceLink:
        """Store an uploaded file and record it on the ticket as an evidence_added event."""
        assert ticket.id is not None
        now, settings = self.ctx.now(), self.ctx.settings
        row = evidence.store(
            self.session,
            settings.evidence_dir,
            stream,
            media_type=media_type,
            filename=filename,
            ticket_id=ticket.id,
            uploader=actor.name,
            now=now,
            max_bytes=settings.evidence_max_bytes,
        )
        ref = f"sha256:{row.sha256}"
        added = EventIn(type="evidence_added", at=now, note=note or filename, evidence=[ref])
        self.add_event(ticket, added, actor)
        return row

    def review(self, breach: Breach, decision: str, reason: str, reviewer: str) -> BreachReview:
        """A supervisor's decision on a breach; it moves the breach totals."""
        now, count = self.ctx.now(), self.deltas.count_breach
        return review_breach(
            self.session, breach, decision, reason, reviewer, now, count, tz=self.ctx.tz
        )

    # Re-judging --------------------------------------------------------------------------
    def rejudge(self, ticket: Ticket, now: datetime | None = None) -> Settled:
        """Judge a ticket again (time passed, or the calendar changed) from its events."""
        assert ticket.id is not None
        return self.settle(ticket, event_rows(self.session, ticket.id), now)

    def settle(
        self,
        ticket: Ticket,
        events: Sequence[StoredEvent],
        now: datetime | None = None,
        *,
        timelines: tuple[list[TimelineEvent], list[Effective]] | None = None,
        complete: bool = True,
    ) -> Settled:
        """Judge the stored ticket at `now` and store all that follows from it (a new one's
        rows are made whole before it is written, `judging.new_tickets`); `timelines` are
        `timeline_of(events)` and its corrected form, when the caller has them (used unless
        a correction is held); not `complete`: `events` are a partial timeline
        (`tickets.service.Appended`), which judges as the whole does but for the late entries
        of events it does not hold, whose findings are left as they are."""
        # What came before (an event's ticket, an earlier judgement of this ticket in this
        # transaction: a state deleted, a finding closed) is written first, so the reads
        # below see it; then one flush (at commit, or the next read through the session
        # after this) writes what settling changes. A flush before each of its reads was
        # most of an event's write.
        self.session.flush()
        with self.session.no_autoflush:
            return self._settle(ticket, events, now, timelines=timelines, complete=complete)

    def _settle(
        self,
        ticket: Ticket,
        events: Sequence[StoredEvent],
        now: datetime | None,
        *,
        timelines: tuple[list[TimelineEvent], list[Effective]] | None,
        complete: bool,
    ) -> Settled:
        ctx = self.ctx
        now = now or ctx.now()
        assert ticket.id is not None
        # A decision is about one of the ticket's corrections: without any, none to read.
        disputed = any(e.type == "correction" for e in events)
        disputes = (
            correction_states(self.session, [ticket.id]).get(ticket.id, {}) if disputed else {}
        )
        held = {seq for seq, d in disputes.items() if d.decision in HELD}
        if timelines is not None and not held:
            seen, timeline = timelines
        else:
            seen = timeline_of(events, held)
            timeline = apply_corrections(seen)
        # The reported time follows its latest correction; scoring and lists go by it.
        reported_at = next(x.at for x in timeline if x.type == "reported")
        if ticket.reported_at != reported_at:  # (an unchanged field left clean: no flush)
            ticket.reported_at = reported_at
        policy = ctx.policies.version(ticket.policy_version)
        judgement = judge(seen, ticket.severity, policy, ctx.calendar, now, ctx.tz, timeline)
        states, before = self._store_states(ticket, judgement, now)
        sync_breaches(self.session, ticket, states, now, self.deltas.count_breach)
        facts = self.facts(ticket, events, states, now, disputes, timeline)
        sync_findings(
            self.session,
            ticket_findings(facts),
            now,
            ticket=ticket,
            kept=None if complete else _unread_late_entries(ticket.id, events),
        )
        self.notices += enqueue_for_states(self.session, ctx, ticket, states, now)
        for state in states:
            self._wake(wakes_at(state.status, state.deadline, state.risk_at))
        self.last = Settled(ticket, judgement, states, before, events, complete)
        return self.last

    def facts(
        self,
        ticket: Ticket,
        events: Sequence[StoredEvent],
        states: Sequence[JudgedState],
        now: datetime,
        disputes: dict[int, CorrectionDecision] | None = None,
        timeline: Sequence[Effective] | None = None,
    ) -> Facts:
        """What the finding rules look at for one ticket (`timeline`: its effective timeline,
        when the caller has it already)."""
        assert ticket.id is not None
        if disputes is None:
            disputes = correction_states(self.session, [ticket.id]).get(ticket.id, {})
        held = {seq for seq, d in disputes.items() if d.decision in HELD}
        waiting = tuple(d for d in disputes.values() if d.decision == CorrectionState.DISPUTED)
        return Facts(
            ticket,
            events,
            effective_timeline(events, held) if timeline is None else timeline,
            states,
            self.ctx.policies.version(ticket.policy_version),
            now,
            self.ctx.tz,
            self.limits,
            waiting,
        )

    def _store_states(
        self, ticket: Ticket, judgement: Judgement, now: datetime
    ) -> tuple[list[JudgedState], dict[str, TargetStatus]]:
        """Rewrite the ticket's target states and derived fields to match the judgement."""
        assert ticket.id is not None
        existing = _stored_states(self.session, ticket.id)
        before = {target: state.status for target, state in existing.items()}
        states: list[JudgedState] = []
        inserts, updates = [], []
        for res in judgement.targets:
            values = state_values(res, ticket.pool, judgement.severity, ticket.policy_version, now)
            key: dict[str, Any] = {"ticket_id": ticket.id, "target": res.target}
            judged = StateRow(**key, **values)
            state = existing.pop(res.target, None)
            if state is None:
                inserts.append(key | values)
            else:
                self.deltas.count_state(state, -1)
                # Only what moved (an event on a closed ticket moves little but judged_at).
                changed = {k: v for k, v in values.items() if getattr(state, k) != v}
                if changed:
                    updates.append(changed | key)
            self.deltas.count_state(judged, +1)
            states.append(judged)
        gone = list(existing.values())  # targets the current severity no longer has
        for state in gone:
            self.deltas.count_state(state, -1)
        # Set only when they move: the session then has nothing to flush for a ticket whose
        # fields stay (a flush with nothing to write still cost 0.4 ms).
        if ticket.current_severity != judgement.severity:
            ticket.current_severity = judgement.severity
        if ticket.status != judgement.status:
            ticket.status = judgement.status
        if ticket not in self.session:  # (adding one it holds cost 3 % of an import)
            self.session.add(ticket)  # (its changed fields, if any, go with the next flush)
        # Plain rows and Core statements, not ORM objects and a flush, which were most of an
        # event's write; a later read in this transaction finds what they wrote.
        if inserts:
            insert_rows(self.session, _STATES, inserts)
        if updates or gone:
            rewritten = [*(u["target"] for u in updates), *(s.target for s in gone)]
            expire_loaded(self.session, TargetState, [(ticket.id, t) for t in rewritten])
        if updates:
            update_rows(self.session, _STATES, updates, key=("ticket_id", "target"))
        if gone:
            self.session.connection().execute(
                _DELETE_STATE, [{"ticket": ticket.id, "target": s.target} for s in gone]
            )
        return states, before

    def _wake(self, instant: datetime | None) -> None:
        if instant is not None and (self.wake_at is None or instant < self.wake_at):
            self.wake_at = instant

    # End of the unit of work -------------------------------------------------------------
    def finish(self) -> None:
        """Apply the metric totals and tell the scheduler of the earliest new wake, and the
        sender of new notices (a wake at or before now)."""
        self.deltas.apply(self.session)
        wake.publish(self.session, self.wake_at)
        if self.notices:
            wake.publish(self.session, self.ctx.now())
        self.wake_at, self.notices = None, 0


# The reads every write of an existing ticket makes, built once (building one cost more than
# SQLite's work for it).
_STATES: sa.Table = TargetState.__table__  # type: ignore[attr-defined]
_STATES_OF = sa.select(*(_STATES.c[f.name] for f in dataclass_fields(StateRow))).where(
    _STATES.c.ticket_id == sa.bindparam("ticket")
)
_DELETE_STATE = sa.delete(_STATES).where(
    _STATES.c.ticket_id == sa.bindparam("ticket"), _STATES.c.target == sa.bindparam("target")
)


def _stored_states(session: Session, ticket_id: int) -> dict[str, StateRow]:
    """A ticket's stored target states as plain rows, by target (Core: no flush first)."""
    rows = session.connection().execute(_STATES_OF, {"ticket": ticket_id}).all()
    return {row.target: StateRow(*row) for row in rows}


def _unread_late_entries(ticket_id: int, events: Sequence[StoredEvent]) -> Callable[[str], bool]:
    """The late-entry findings of the events a partial timeline does not hold: an event's
    lateness is its own (when it happened and was entered), so its finding stands."""
    prefix = f"late_entry:{ticket_id}:"
    read = {f"{prefix}{e.seq}" for e in events}
    return lambda key: key.startswith(prefix) and key not in read


@contextmanager
def write_flow(session: Session, ctx: SlaContext) -> Iterator[WriteFlow]:
    """A WriteFlow over this session, finished when the block ends without an error."""
    flow = WriteFlow(session, ctx)
    yield flow
    flow.finish()
