"""The jobs that time and configuration drive through the write flow: clocks that ran out,
findings that only the passing of time raises, and a calendar change."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from monitor.breaches.findings import (
    calendar_findings,
    sync_findings,
    ticket_findings,
)
from monitor.calendars.calendar import YearArrangement
from monitor.calendars.service import current_calendar, load_arrangements
from monitor.judging.flow import WriteFlow
from monitor.notifications.service import enqueue_calendar_missing
from monitor.sla.models import TargetState
from monitor.sla.vocab import CLOCK_RUNNING, TargetStatus, TicketStatus
from monitor.tickets.models import Ticket
from monitor.tickets.service import ticket_events


@dataclass(frozen=True)
class Change:
    ticket_id: int
    ref: str
    target: str
    before: str
    after: str

    def __str__(self) -> str:
        return f"ticket {self.ref}: {self.target} {self.before} → {self.after}"


@dataclass
class Sweep:
    """What one breach sweep looked at and what it changed."""

    looked_at: int
    changes: list[Change]

    def __len__(self) -> int:
        return len(self.changes)


def due_tickets(session: Session, now: datetime) -> list[int]:
    """Tickets with a running clock past its deadline or warning instant (by the open
    clocks' indexes: a running clock has no stop)."""
    open_clock = col(TargetState.stop).is_(None)
    past_deadline = select(TargetState.ticket_id).where(
        col(TargetState.status).in_(CLOCK_RUNNING), col(TargetState.deadline) < now, open_clock
    )
    past_warning = select(TargetState.ticket_id).where(
        TargetState.status == TargetStatus.RUNNING, col(TargetState.risk_at) <= now, open_clock
    )
    ids = set(session.exec(past_deadline).all()) | set(session.exec(past_warning).all())
    return sorted(ids)


def detect_breaches(flow: WriteFlow) -> Sweep:
    """Re-judge every clock that ran out or reached its warning; a rerun changes nothing."""
    session, now = flow.session, flow.ctx.now()
    due = due_tickets(session, now)
    # Lock every due ticket first, in id order, before the first audit append takes the chain
    # lock: locking them one by one while holding it deadlocks with a writer that holds one of
    # them and waits for the chain.
    tickets: dict[int | None, Ticket] = {}
    for i in range(0, len(due), 1000):
        chunk = due[i : i + 1000]  # ascending, like `due`
        query = select(Ticket).where(col(Ticket.id).in_(chunk)).order_by(col(Ticket.id))
        tickets.update((t.id, t) for t in session.exec(query.with_for_update()).all())
    changes = []
    for ticket_id in due:
        ticket = tickets[ticket_id]
        settled = flow.rejudge(ticket, now)
        ref = ticket.external_id or str(ticket.id)
        changes += [Change(ticket_id, ref, *moved) for moved in settled.changed()]
    return Sweep(len(due), changes)


@dataclass
class Refresh:
    """What the findings job looked at and how many findings it opened or closed."""

    looked_at: int
    changed: int
    calendar: list[str] = field(default_factory=list)


def sync_calendar(flow: WriteFlow, *, notify: bool = False) -> tuple[int, list[str]]:
    """Raise (or close) the finding that next year's official calendar is missing; run at
    start, on `check` and daily (the daily job also tells the admins, once). Returns the
    findings changed and what is missing, in words."""
    ctx = flow.ctx
    now = ctx.now()
    found = calendar_findings(ctx.calendar, now.astimezone(ctx.tz).date())
    changed = sync_findings(flow.session, found, now, kinds=["calendar_missing"])
    if notify:
        flow.notices += enqueue_calendar_missing(flow.session, ctx, found, now)
    return changed, [f.detail for f in found]


def refresh_findings(flow: WriteFlow) -> Refresh:
    """Daily: findings that time alone raises (overdue tickets, next year's calendar).

    Reads the stored target states and never rewrites them, so a replay at an earlier
    `--now` cannot undo what was already judged."""
    session, ctx = flow.session, flow.ctx
    now = ctx.now()
    changed, missing = sync_calendar(flow, notify=True)
    open_tickets = session.exec(select(Ticket).where(Ticket.status == TicketStatus.OPEN)).all()
    for ticket in open_tickets:
        assert ticket.id is not None
        events = ticket_events(session, ticket.id)
        states = session.exec(select(TargetState).where(TargetState.ticket_id == ticket.id)).all()
        facts = flow.facts(ticket, events, states, now)
        changed += sync_findings(session, ticket_findings(facts), now, ticket=ticket)
    return Refresh(len(open_tickets), changed, missing)


def rejudge_for_years(flow: WriteFlow, years: set[int]) -> int:
    """Re-judge every ticket with a working-day target that counts days in `years`."""
    if not years:
        return 0
    # A count starting up to a month before a year can reach into it.
    begin = datetime(min(years), 1, 1, tzinfo=UTC) - timedelta(days=40)
    end = datetime(max(years) + 1, 1, 1, tzinfo=UTC)
    ids = flow.session.exec(
        select(TargetState.ticket_id)
        .distinct()
        .where(
            TargetState.calendar == "cn_workdays",
            sa.or_(
                col(TargetState.unknown_year).in_(sorted(years)),
                sa.and_(col(TargetState.start) >= begin, col(TargetState.start) < end),
            ),
        )
    ).all()
    for ticket_id in ids:
        ticket = flow.session.get(Ticket, ticket_id)
        assert ticket is not None
        flow.rejudge(ticket)
    return len(ids)


def load_calendar(
    flow: WriteFlow, arrangements: list[YearArrangement], *, actor: str, file_name: str
) -> int:
    """Record an admin's official arrangements (audited) and re-judge what they affect;
    returns how many tickets were re-judged."""
    ctx = flow.ctx
    load_arrangements(flow.session, arrangements, actor=actor, at=ctx.now(), file_name=file_name)
    ctx.calendar = current_calendar(flow.session, ctx.settings.config_dir)
    return rejudge_for_years(flow, {a.year for a in arrangements})
