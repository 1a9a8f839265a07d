"""Read-only summaries over the stored target states and breaches, scoped to a pool or not."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, tzinfo

import sqlalchemy as sa
from sqlmodel import Session, col, select

from monitor.breaches.models import Breach
from monitor.core.timeutil import year_bounds
from monitor.sla.models import TargetState
from monitor.tickets.models import Ticket

RUNNING = ("running", "at_risk", "paused")
DECIDED = ("met", "breached")


@dataclass(frozen=True)
class Upcoming:
    ticket: Ticket
    state: TargetState


@dataclass(frozen=True)
class Duration:
    """One stopped clock: which ticket, when it was reported, how long it took."""

    ticket_id: int
    external_id: str | None
    pool: str
    reported_at: datetime
    target: str
    seconds: float


def nearest_deadlines(session: Session, *, pool: str | None, limit: int = 10) -> list[Upcoming]:
    """Open clocks nearest their deadline (those already past it first)."""
    query = (
        select(TargetState, Ticket)
        .join(Ticket, col(Ticket.id) == TargetState.ticket_id)
        .where(col(TargetState.status).in_((*RUNNING, "breached")))
        .where(col(TargetState.stop).is_(None), col(TargetState.deadline).is_not(None))
    )
    if pool is not None:
        query = query.where(TargetState.pool == pool)
    rows = session.exec(query.order_by(col(TargetState.deadline)).limit(limit)).all()
    return [Upcoming(ticket, state) for state, ticket in rows]


def latest_year(session: Session, *, pool: str | None, tz: tzinfo) -> int | None:
    """The local year of the most recent report, for a page that would otherwise be empty."""
    query = select(sa.func.max(Ticket.reported_at))
    if pool is not None:
        query = query.where(Ticket.pool == pool)
    last = session.exec(query).one()
    return last.astimezone(tz).year if last else None


def _in_year(year: int, tz: tzinfo) -> tuple[sa.ColumnElement[bool], sa.ColumnElement[bool]]:
    begin, end = year_bounds(year, tz)
    return col(Ticket.reported_at) >= begin, col(Ticket.reported_at) < end


def timeliness(
    session: Session, *, year: int, pool: str | None, tz: tzinfo
) -> dict[str, Counter[str]]:
    """Per pool, how many decided clocks of the year's tickets were met and how many breached."""
    query = (
        select(TargetState.pool, TargetState.status, sa.func.count())
        .join(Ticket, col(Ticket.id) == TargetState.ticket_id)
        .where(col(TargetState.status).in_(DECIDED))
        .group_by(TargetState.pool, TargetState.status)
    )
    if pool is not None:
        query = query.where(TargetState.pool == pool)
    out: dict[str, Counter[str]] = {}
    for p, status, n in session.exec(query.where(*_in_year(year, tz))).all():
        out.setdefault(p, Counter())[status] += n
    return out


def breaches_by_month(
    session: Session, *, year: int, pool: str | None, tz: tzinfo
) -> dict[str, list[int]]:
    """Per pool, the standing breaches of the year's tickets by local month of the report."""
    query = (
        select(Breach.pool, Ticket.reported_at)
        .join(Ticket, col(Ticket.id) == Breach.ticket_id)
        .where(col(Breach.cleared_at).is_(None))
    )
    if pool is not None:
        query = query.where(Breach.pool == pool)
    out: dict[str, list[int]] = {}
    for p, reported in session.exec(query.where(*_in_year(year, tz))).all():
        out.setdefault(p, [0] * 12)[reported.astimezone(tz).month - 1] += 1
    return out


def durations(
    session: Session,
    *,
    year: int,
    pool: str | None,
    tz: tzinfo,
    severity: str,
    targets: tuple[str, ...],
) -> list[Duration]:
    """How long each stopped clock of these targets took, for the year's tickets of a severity."""
    query = (
        select(TargetState, Ticket)
        .join(Ticket, col(Ticket.id) == TargetState.ticket_id)
        .where(TargetState.severity == severity, col(TargetState.target).in_(targets))
        .where(col(TargetState.stop).is_not(None), col(TargetState.elapsed_seconds).is_not(None))
    )
    if pool is not None:
        query = query.where(TargetState.pool == pool)
    rows = session.exec(query.where(*_in_year(year, tz)).order_by(col(Ticket.reported_at))).all()
    return [
        Duration(t.id or 0, t.external_id, t.pool, t.reported_at, s.target, s.elapsed_seconds or 0)
        for s, t in rows
    ]
