"""Re-judging the tickets a calendar change can affect."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from monitor.sla.models import TargetState
from monitor.sla.service import SlaContext, rejudge
from monitor.tickets.models import Ticket


def rejudge_for_years(session: Session, ctx: SlaContext, years: set[int]) -> int:
    """Re-judge every ticket with a working-day target that counts days in `years`."""
    if not years:
        return 0
    # A count starting up to a month before a year can reach into it.
    begin = datetime(min(years), 1, 1, tzinfo=UTC) - timedelta(days=40)
    end = datetime(max(years) + 1, 1, 1, tzinfo=UTC)
    ids = session.exec(
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
        ticket = session.get(Ticket, ticket_id)
        assert ticket is not None
        rejudge(session, ctx, ticket)
    return len(ids)
