"""Finding tickets, for the API and the command line alike: filters written as codes or
Chinese names, one page of summaries, and a ticket by its external id."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Protocol

from sqlmodel import Session, select

from monitor.core.errors import Conflict, InvalidInput, Problem, TicketNotFound
from monitor.sla.service import SlaContext
from monitor.sla.vocab import TICKET_SOURCES, TargetStatus, TicketStatus
from monitor.sla.words import words
from monitor.tickets.models import Ticket
from monitor.tickets.schemas import TargetBrief, TicketPage, TicketSummary
from monitor.tickets.search import search_tickets
from monitor.tickets.service import target_order


@dataclass
class TicketFilters:
    """What `GET /tickets` and `sla-monitor tickets list` filter on."""

    pool: str | None = None
    severity: str | None = None
    status: str | None = None
    breached: bool | None = None
    reported_from: datetime | None = None
    reported_to: datetime | None = None
    q: str | None = None
    source: str | None = None


def as_codes(ctx: SlaContext, filters: TicketFilters, where: str = "") -> TicketFilters:
    """The filters with Chinese names read as codes; an unknown status or source is refused."""
    vocabulary = words(ctx)
    problems = []
    status = vocabulary.ticket_status(filters.status) if filters.status else None
    if status is not None and status not in set(TicketStatus):
        problems.append(
            Problem(
                f"{where}status",
                f"{filters.status!r}: use open/处理中, resolved/已解决 or closed/已关闭",
            )
        )
    source = vocabulary.source(filters.source) if filters.source else None
    if source is not None and source not in TICKET_SOURCES:
        problems.append(
            Problem(
                f"{where}source",
                f"{filters.source!r}: use one of "
                + ", ".join(f"{c}/{vocabulary.source_label(c)}" for c in TICKET_SOURCES),
            )
        )
    if problems:
        raise InvalidInput(problems)
    return TicketFilters(
        pool=vocabulary.pool(filters.pool) if filters.pool else None,
        severity=vocabulary.severity(filters.severity) if filters.severity else None,
        status=status,
        breached=filters.breached,
        reported_from=filters.reported_from,
        reported_to=filters.reported_to,
        q=filters.q,
        source=source,
    )


def find_page(
    session: Session,
    ctx: SlaContext,
    filters: TicketFilters,
    *,
    scope: str | None,
    page: int = 1,
    per_page: int = 50,
) -> TicketPage:
    """One page of ticket summaries; `scope` limits an operator to its own pool."""
    filters = as_codes(ctx, filters)
    if scope is not None and filters.pool is not None and filters.pool != scope:
        return TicketPage(items=[], total=0, page=page, per_page=per_page)
    found = search_tickets(
        session,
        pool=scope or filters.pool,
        severity=filters.severity,
        status=filters.status,
        breached=filters.breached,
        reported_from=filters.reported_from,
        reported_to=filters.reported_to,
        q=filters.q,
        source=filters.source,
        page=page,
        per_page=per_page,
        tz=ctx.tz,
    )
    items = [summary(ctx, t, states) for t, states in found.rows]
    return TicketPage(
        items=items, total=found.total, total_exact=found.exact, page=page, per_page=per_page
    )


class BriefState(Protocol):
    """What a summary shows of a target state (a stored row, or the columns of one)."""

    @property
    def target(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def deadline(self) -> datetime | None: ...


def summary(ctx: SlaContext, t: Ticket, states: Sequence[BriefState]) -> TicketSummary:
    """A ticket as a list shows it: its targets in the policy's order, deadlines local."""
    rank = partial(target_order, ctx, t)
    return TicketSummary(
        id=t.id or 0,
        external_id=t.external_id,
        pool=t.pool,
        severity=t.current_severity,
        title=t.title,
        source=t.source,
        status=t.status,
        reported_at=t.reported_at.astimezone(ctx.tz).isoformat(),
        breached=any(s.status == TargetStatus.BREACHED for s in states),
        targets=[
            TargetBrief(
                id=s.target,
                status=TargetStatus(s.status),
                deadline=s.deadline.astimezone(ctx.tz).isoformat() if s.deadline else None,
            )
            for s in sorted(states, key=lambda s: rank(s.target))
        ],
    )


def by_external_id(
    session: Session, ctx: SlaContext, external_id: str, *, scope: str | None, pool: str | None
) -> Ticket:
    """The ticket with this external id in the caller's pool (or the pool asked for)."""
    query = select(Ticket).where(Ticket.external_id == external_id)
    wanted = words(ctx).pool(pool) if pool else None
    if scope is not None:
        query = query.where(Ticket.pool == scope)
    if wanted is not None:
        query = query.where(Ticket.pool == wanted)
    found = session.exec(query.order_by(Ticket.pool)).all()
    if not found:
        raise TicketNotFound(f"no ticket with external id {external_id!r}")
    if len(found) > 1:
        pools = ", ".join(t.pool for t in found)
        raise Conflict(
            f"external id {external_id!r} is used in several pools ({pools}): add ?pool=…"
        )
    return found[0]
