"""Recording breaches as soon as they are known, and the supervisor's reviews of them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from sqlmodel import Session, col, select

from monitor.audit import service as audit
from monitor.breaches.models import Breach, BreachReview
from monitor.core.errors import DomainError, InvalidInput, NotFound, Problem
from monitor.core.timeutil import year_bounds
from monitor.sla.models import TargetState
from monitor.sla.vocab import DECISIONS, Review, TargetStatus
from monitor.tickets.models import Ticket

# Told of every breach row that stops (-1) or starts (+1) counting under its labels.
Counter = Callable[[Breach, int], None]


class BreachNotFound(NotFound):
    pass


def sync_breaches(
    session: Session, ticket: Ticket, states: Sequence[TargetState], now: datetime, count: Counter
) -> list[Breach]:
    """Make the ticket's breach records match its judged targets; returns new breaches."""
    assert ticket.id is not None
    existing = {
        b.target: b for b in session.exec(select(Breach).where(Breach.ticket_id == ticket.id)).all()
    }
    breached = {s.target: s for s in states if s.status == TargetStatus.BREACHED and s.deadline}
    created = []
    for target, state in breached.items():
        assert state.deadline is not None
        breach = existing.get(target)
        if breach is None:
            breach = Breach(
                ticket_id=ticket.id,
                target=target,
                pool=ticket.pool,
                severity=state.severity,
                deadline=state.deadline,
                detected_at=now,
            )
            session.add(breach)
            session.flush()
            count(breach, +1)
            created.append(breach)
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
        if target not in breached and breach.cleared_at is None:
            count(breach, -1)
            breach.cleared_at = now
            count(breach, +1)
            session.add(breach)
            _audit(session, breach, "breach.cleared", now)
    session.flush()
    return created


def _audit(session: Session, breach: Breach, action: str, now: datetime) -> None:
    audit.append(
        session,
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
    return list(
        session.exec(
            select(BreachReview)
            .where(BreachReview.breach_id == breach_id)
            .order_by(col(BreachReview.id))
        ).all()
    )


def review_breach(
    session: Session,
    breach: Breach,
    decision: str,
    reason: str,
    reviewer: str,
    now: datetime,
    count: Counter,
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
        raise DomainError(
            f"breach {breach.id} no longer stands (cleared "
            f"{breach.cleared_at.isoformat()}); there is nothing to review"
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
) -> list[BreachRow]:
    query = select(Breach, Ticket).join(Ticket, col(Ticket.id) == Breach.ticket_id)
    if not include_cleared:
        query = query.where(col(Breach.cleared_at).is_(None))
    if pending:
        query = query.where(Breach.review == Review.PENDING)
    if pool is not None:
        query = query.where(Breach.pool == pool)
    if year is not None:
        begin, end = year_bounds(year, tz or UTC)
        query = query.where(col(Ticket.reported_at) >= begin, col(Ticket.reported_at) < end)
    return [BreachRow(b, t) for b, t in session.exec(query.order_by(col(Breach.id))).all()]


def overrun(session: Session, breach: Breach, now: datetime) -> tuple[datetime | None, timedelta]:
    """When the breached clock stopped (None while it runs) and how far past its deadline."""
    state = session.get(TargetState, (breach.ticket_id, breach.target))
    stop = state.stop if state is not None else None
    return stop, max(timedelta(), (stop or now) - breach.deadline)
