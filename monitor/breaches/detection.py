"""The scheduled jobs' work: find clocks that ran out or reached their warning, and findings
that depend on the passing of time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from monitor.breaches.findings import calendar_findings, refresh_ticket_findings, sync_findings
from monitor.sla.models import TargetState
from monitor.sla.service import SlaContext, rejudge, ticket_events
from monitor.tickets.models import Ticket

RUNNING = ("running", "at_risk")
# A breach is `now > deadline`: wake just after the deadline, not at it.
AFTER_DEADLINE = timedelta(milliseconds=1)


@dataclass(frozen=True)
class Change:
    ticket_id: int
    ref: str
    target: str
    before: str
    after: str

    def __str__(self) -> str:
        return f"ticket {self.ref}: {self.target} {self.before} → {self.after}"


def due_tickets(session: Session, now: datetime) -> list[int]:
    """Tickets with a running clock past its deadline or warning instant (indexed lookups)."""
    past_deadline = select(TargetState.ticket_id).where(
        col(TargetState.status).in_(RUNNING), col(TargetState.deadline) < now
    )
    past_warning = select(TargetState.ticket_id).where(
        TargetState.status == "running", col(TargetState.risk_at) <= now
    )
    ids = set(session.exec(past_deadline).all()) | set(session.exec(past_warning).all())
    return sorted(ids)


def next_wake(session: Session) -> datetime | None:
    """When the next clock runs out or reaches its warning instant."""
    deadline = session.exec(
        select(sa.func.min(TargetState.deadline)).where(col(TargetState.status).in_(RUNNING))
    ).one()
    warning = session.exec(
        select(sa.func.min(TargetState.risk_at)).where(TargetState.status == "running")
    ).one()
    candidates = []
    if deadline is not None:
        candidates.append(_aware(deadline) + AFTER_DEADLINE)
    if warning is not None:
        candidates.append(_aware(warning))
    return min(candidates, default=None)


def _aware(value: datetime) -> datetime:
    from datetime import UTC

    return value if value.tzinfo else value.replace(tzinfo=UTC)


def detect_breaches(session: Session, ctx: SlaContext) -> list[Change]:
    """Re-judge every clock that ran out or reached its warning; a rerun changes nothing."""
    now = ctx.now()
    changes = []
    for ticket_id in due_tickets(session, now):
        ticket = session.exec(select(Ticket).where(Ticket.id == ticket_id).with_for_update()).one()
        before = {
            s.target: s.status
            for s in session.exec(
                select(TargetState).where(TargetState.ticket_id == ticket_id)
            ).all()
        }
        judgement = rejudge(session, ctx, ticket, now)
        ref = ticket.external_id or str(ticket.id)
        for target in judgement.targets:
            if before.get(target.target) != target.status:
                changes.append(
                    Change(
                        ticket_id, ref, target.target, before.get(target.target, "—"), target.status
                    )
                )
    return changes


def refresh_findings(session: Session, ctx: SlaContext) -> int:
    """Daily: findings that time alone raises (overdue tickets, next year's calendar).

    Reads the stored target states and never rewrites them, so a replay at an earlier
    `--now` cannot undo what was already judged."""
    now = ctx.now()
    changed = sync_findings(
        session,
        calendar_findings(ctx.calendar, now.astimezone(ctx.tz).date()),
        now,
        kinds=["calendar_missing"],
    )
    for ticket in session.exec(select(Ticket).where(Ticket.status == "open")).all():
        assert ticket.id is not None
        states = session.exec(select(TargetState).where(TargetState.ticket_id == ticket.id)).all()
        changed += refresh_ticket_findings(
            session,
            ticket,
            ticket_events(session, ticket.id),
            states,
            ctx.policies.version(ticket.policy_version),
            now,
            ctx.tz,
            ctx.thresholds,
        )
    return changed


def reconcile_metrics(session: Session, ctx: SlaContext) -> int:
    """Daily: rewrite the metric totals from the rows; returns how many had drifted."""
    from monitor.metrics.totals import reconcile

    return reconcile(session, ctx.now())
