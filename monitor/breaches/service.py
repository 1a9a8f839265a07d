"""Recording breaches as soon as they are known, and the supervisor's reviews of them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from monitor.audit import service as audit
from monitor.breaches.models import Breach, BreachReview, CorrectionDecision
from monitor.core.batch import as_loaded, insert_returning_ids
from monitor.core.errors import Conflict, InvalidInput, NotFound, Problem
from monitor.core.timeutil import show, year_bounds
from monitor.sla.models import JudgedState, TargetState
from monitor.sla.vocab import DECISIONS, EVENT_LABELS, HELD, CorrectionState, Review, TargetStatus
from monitor.tickets.models import Event, Ticket

_BREACHES = Breach.__table__  # type: ignore[attr-defined]

# Told of every breach row that stops (-1) or starts (+1) counting under its labels.
Counter = Callable[[Breach, int], None]


class BreachNotFound(NotFound):
    pass


class BreachCleared(Conflict):
    """A later correction showed the target met: there is nothing left to review."""


def clearing_event(session: Session, breach: Breach) -> Event | None:
    """The event that cleared a breach: the last one recorded by then, a correction if any."""
    if breach.cleared_at is None:
        return None
    rows = session.exec(
        select(Event)
        .where(Event.ticket_id == breach.ticket_id, col(Event.recorded_at) <= breach.cleared_at)
        .order_by(col(Event.seq).desc())
    ).all()
    return next((e for e in rows if e.type == "correction"), rows[0] if rows else None)


def cleared_by(session: Session, breach: Breach, tz: tzinfo) -> str:
    """In words: when a breach was cleared and by which event."""
    event = clearing_event(session, breach)
    text = f"cleared {show(breach.cleared_at, tz)}"
    if event is None:
        return text
    what = f"{EVENT_LABELS.get(event.type, event.type)} #{event.seq}"
    if event.type == "correction" and event.reason:
        what += f" ({event.reason})"
    return f"{text} by {what}, recorded by {event.actor}"


def sync_breaches(
    session: Session,
    ticket: Ticket,
    states: Sequence[JudgedState],
    now: datetime,
    count: Counter,
) -> None:
    """Make the ticket's breach records match its judged targets (a new ticket's are made
    with its other rows, `judging.new_tickets`)."""
    assert ticket.id is not None
    existing = {b.target: b for b in session.exec(_BREACHES_OF, params={"ticket": ticket.id})}
    wanted = breached(states)
    for target, state in wanted.items():
        assert state.deadline is not None
        breach = existing.get(target)
        if breach is None:
            values = new_breach(ticket.id, ticket.pool, state, now)
            # Its id now (its audit record names it), by one INSERT rather than a flush of
            # everything else the session holds.
            (breach_id,) = insert_returning_ids(session, _BREACHES, [values])
            (breach,) = as_loaded(session, Breach, [{"id": breach_id, **values}])
            count(breach, +1)
            _audit(session, breach, "breach.detected", now)
        elif (
            breach.cleared_at is not None
            or breach.deadline != state.deadline
            or breach.severity != state.severity
        ):
            reinstated = breach.cleared_at is not None
            count(breach, -1)
            breach.cleared_at, breach.deadline = None, state.deadline
            breach.severity = state.severity
            count(breach, +1)
            session.add(breach)
            _audit(session, breach, "breach.reinstated" if reinstated else "breach.moved", now)
    for target, breach in existing.items():
        if target not in wanted and breach.cleared_at is None:
            count(breach, -1)
            breach.cleared_at = now
            count(breach, +1)
            session.add(breach)
            _audit(session, breach, "breach.cleared", now)
    # (changed breaches go with the session's next flush)


def breached(states: Sequence[JudgedState]) -> dict[str, JudgedState]:
    """The judged targets that are breached, by target, in the states' order."""
    return {s.target: s for s in states if s.status == TargetStatus.BREACHED and s.deadline}


def new_breach(ticket_id: int, pool: str, state: JudgedState, now: datetime) -> dict[str, Any]:
    """The row of a breach detected now for a breached target state."""
    return {
        "ticket_id": ticket_id,
        "target": state.target,
        "pool": pool,
        "severity": state.severity,
        "deadline": state.deadline,
        "detected_at": now,
        "cleared_at": None,
        "review": Review.PENDING,
        "reviewed_at": None,
    }


def _audit(session: Session, breach: Breach, action: str, now: datetime) -> None:
    audit.append_many(session, [breach_entry(breach, action, now)])


def breach_entry(breach: Breach | Any, action: str, now: datetime) -> audit.Entry:
    """The audit record of what happened to a breach (a stored one, or a new one's row as
    attributes, its id given)."""
    return audit.Entry(
        at=now,
        actor="system",
        action=action,
        entity="breach",
        entity_id=str(breach.id),
        payload={
            "ticket": breach.ticket_id,
            "target": breach.target,
            "pool": breach.pool,
            "severity": breach.severity,
            "deadline": breach.deadline.isoformat(),
        },
    )


def get_breach(session: Session, breach_id: int, pool: str | None = None) -> Breach:
    breach = session.get(Breach, breach_id)
    if breach is None or (pool is not None and breach.pool != pool):
        raise BreachNotFound(f"no breach {breach_id}")
    return breach


def reviews_of(session: Session, breach_id: int) -> list[BreachReview]:
    return reviews_of_each(session, [breach_id]).get(breach_id, [])


def reviews_of_each(session: Session, breach_ids: Sequence[int]) -> dict[int, list[BreachReview]]:
    """Each breach's reviews in order, by breach id (500 breaches a read)."""
    out: dict[int, list[BreachReview]] = {}
    for start in range(0, len(breach_ids), 500):
        of = col(BreachReview.breach_id).in_(breach_ids[start : start + 500])
        for review in session.exec(select(BreachReview).where(of).order_by(col(BreachReview.id))):
            out.setdefault(review.breach_id, []).append(review)
    return out


def review_breach(
    session: Session,
    breach: Breach,
    decision: str,
    reason: str,
    reviewer: str,
    now: datetime,
    count: Counter,
    tz: tzinfo = UTC,
) -> BreachReview:
    """Record a supervisor's decision; a later one supersedes it and both stay on record."""
    problems = []
    if decision not in DECISIONS:
        problems.append(Problem("decision", f"must be one of {', '.join(DECISIONS)}"))
    if decision == Review.WAIVED and not reason.strip():
        problems.append(Problem("reason", "waiving a breach needs a reason"))
    if not reviewer.strip():
        problems.append(Problem("reviewer", "who reviews must be named"))
    if problems:
        raise InvalidInput(problems)
    if breach.cleared_at is not None:
        raise BreachCleared(
            f"breach {breach.id} no longer stands: {cleared_by(session, breach, tz)}; "
            "a cleared breach is not reviewed or scored"
        )
    assert breach.id is not None
    previous = reviews_of(session, breach.id)
    review = BreachReview(
        breach_id=breach.id,
        decision=decision,
        reason=reason.strip(),
        reviewer=reviewer,
        reviewed_at=now,
        supersedes_id=previous[-1].id if previous else None,
    )
    session.add(review)
    count(breach, -1)
    breach.review, breach.reviewed_at = Review(decision), now
    count(breach, +1)
    session.add(breach)
    session.flush()
    audit.append(
        session,
        at=now,
        actor=reviewer,
        action="breach.reviewed",
        entity="breach",
        entity_id=str(breach.id),
        payload={
            "ticket": breach.ticket_id,
            "target": breach.target,
            "review": review.id,
            "decision": decision,
            "reason": review.reason,
            "supersedes": review.supersedes_id,
        },
    )
    return review


@dataclass(frozen=True)
class BreachRow:
    breach: Breach
    ticket: Ticket


def list_breaches(
    session: Session,
    *,
    pending: bool = False,
    year: int | None = None,
    pool: str | None = None,
    tz: tzinfo | None = None,
    include_cleared: bool = False,
    ticket_id: int | None = None,
    reviewed: bool = False,
    offset: int = 0,
    limit: int | None = None,
) -> list[BreachRow]:
    """Breaches with their tickets, oldest first; `reviewed`: only those a supervisor has
    reviewed, the latest review first. `offset` and `limit` take one page of them in the
    database (a history's breaches number in the hundred thousands: every page read them
    all)."""
    query = _breaches_where(
        select(Breach, Ticket).join(Ticket, col(Ticket.id) == Breach.ticket_id),
        pending=pending,
        year=year,
        pool=pool,
        tz=tz,
        include_cleared=include_cleared,
        ticket_id=ticket_id,
        reviewed=reviewed,
    )
    if reviewed:
        latest = sa.func.coalesce(col(Breach.reviewed_at), col(Breach.detected_at))
        query = query.order_by(latest.desc(), col(Breach.id))
    else:
        query = query.order_by(col(Breach.id))
    query = query.offset(offset)
    if limit is not None:
        query = query.limit(limit)
    return [BreachRow(b, t) for b, t in session.exec(query).all()]


def count_breaches(
    session: Session,
    *,
    pending: bool = False,
    year: int | None = None,
    pool: str | None = None,
    tz: tzinfo | None = None,
    reviewed: bool = False,
) -> int:
    """How many breaches `list_breaches` would list with these filters, counted by the
    database."""
    query = select(sa.func.count()).select_from(Breach)
    if year is not None:
        query = query.join(Ticket, col(Ticket.id) == Breach.ticket_id)
    query = _breaches_where(query, pending=pending, year=year, pool=pool, tz=tz, reviewed=reviewed)
    return int(session.exec(query).one())


def _breaches_where(
    query: Any,
    *,
    pending: bool,
    year: int | None,
    pool: str | None,
    tz: tzinfo | None,
    include_cleared: bool = False,
    ticket_id: int | None = None,
    reviewed: bool = False,
) -> Any:
    if not include_cleared:
        query = query.where(col(Breach.cleared_at).is_(None))
    if pending:
        query = query.where(Breach.review == Review.PENDING)
    if reviewed:
        query = query.where(Breach.review != Review.PENDING)
    if pool is not None:
        query = query.where(Breach.pool == pool)
    if ticket_id is not None:
        query = query.where(Breach.ticket_id == ticket_id)
    if year is not None:
        begin, end = year_bounds(year, tz or UTC)
        query = query.where(col(Ticket.reported_at) >= begin, col(Ticket.reported_at) < end)
    return query


def overrun(session: Session, breach: Breach, now: datetime) -> tuple[datetime | None, timedelta]:
    """When the breached clock stopped (None while it runs) and how far past its deadline."""
    return overruns(session, [breach], now)[breach.id or 0]


def overruns(
    session: Session, breaches: Sequence[Breach], now: datetime
) -> dict[int, tuple[datetime | None, timedelta]]:
    """`overrun` of each breach, by id: their target states read 500 tickets at a time."""
    stops: dict[tuple[int, str], datetime | None] = {}
    ticket_ids = sorted({b.ticket_id for b in breaches})
    for start in range(0, len(ticket_ids), 500):
        of = col(TargetState.ticket_id).in_(ticket_ids[start : start + 500])
        query = select(TargetState.ticket_id, TargetState.target, TargetState.stop).where(of)
        for ticket_id, target, stop in session.exec(query):
            stops[(ticket_id, target)] = stop
    out = {}
    for b in breaches:
        stop = stops.get((b.ticket_id, b.target))
        out[b.id or 0] = stop, max(timedelta(), (stop or now) - b.deadline)
    return out


# Disputed corrections ------------------------------------------------------------------------
def correction_states(
    session: Session, ticket_ids: Sequence[int], as_of: datetime | None = None
) -> dict[int, dict[int, CorrectionDecision]]:
    """Each ticket's disputed corrections and their latest decision (as of `as_of`)."""
    out: dict[int, dict[int, CorrectionDecision]] = {}
    query = _DECISIONS if as_of is None else _DECISIONS_AS_OF
    for chunk in range(0, len(ticket_ids), 500):
        ids = ticket_ids[chunk : chunk + 500]
        for row in session.exec(query, params={"ids": ids, "as_of": as_of}).all():
            out.setdefault(row.ticket_id, {})[row.correction_seq] = row
    return out


# Built once: every write of an existing ticket reads its breaches and its disputes.
_BREACHES_OF = select(Breach).where(Breach.ticket_id == sa.bindparam("ticket"))
_DECISIONS = (
    select(CorrectionDecision)
    .where(col(CorrectionDecision.ticket_id).in_(sa.bindparam("ids", expanding=True)))
    .order_by(col(CorrectionDecision.id))
)
_DECISIONS_AS_OF = _DECISIONS.where(col(CorrectionDecision.decided_at) <= sa.bindparam("as_of"))


def held_corrections(
    session: Session, ticket_ids: Sequence[int], as_of: datetime | None = None
) -> dict[int, set[int]]:
    """The corrections the clock leaves out: disputed and not accepted, or rejected."""
    return {
        ticket_id: {seq for seq, row in rows.items() if row.decision in HELD}
        for ticket_id, rows in correction_states(session, ticket_ids, as_of).items()
    }


def record_correction_state(
    session: Session,
    ticket: Ticket,
    seq: int,
    decision: CorrectionState,
    reason: str,
    actor: str,
    now: datetime,
) -> CorrectionDecision:
    """One step of a disputed correction (disputed by the system, then accepted or rejected
    by the supervision unit), appended and audited."""
    assert ticket.id is not None
    row = CorrectionDecision(
        ticket_id=ticket.id,
        correction_seq=seq,
        decision=decision,
        reason=reason,
        actor=actor,
        decided_at=now,
    )
    session.add(row)
    session.flush()
    audit.append(
        session,
        at=now,
        actor=actor,
        action=f"correction.{decision.value}",
        entity="ticket",
        entity_id=str(ticket.id),
        payload={"seq": seq, "decision": decision.value, "reason": reason},
    )
    return row


def check_decision(
    session: Session, ticket: Ticket, seq: int, decision: str, reason: str, reviewer: str
) -> CorrectionState:
    """A supervision unit's decision must name a correction that waits for one."""
    assert ticket.id is not None
    problems = []
    if decision not in (CorrectionState.ACCEPTED, CorrectionState.REJECTED):
        problems.append(Problem("decision", "must be accepted or rejected"))
    if not reason.strip():
        problems.append(Problem("reason", "a decision on a disputed correction needs a reason"))
    if not reviewer.strip():
        problems.append(Problem("reviewer", "who decides must be named"))
    if problems:
        raise InvalidInput(problems)
    current = correction_states(session, [ticket.id]).get(ticket.id, {}).get(seq)
    if current is None:
        raise NotFound(f"event #{seq} of ticket {ticket.id} is not a disputed correction")
    if current.decision != CorrectionState.DISPUTED:
        raise Conflict(f"the correction #{seq} was already {current.decision} by {current.actor}")
    return CorrectionState(decision)
