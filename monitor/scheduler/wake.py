"""When the scheduler must wake next: the same rule as `sla.timer.wakes_at`, as one query."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

from monitor.sla.models import TargetState
from monitor.sla.timer import AFTER_DEADLINE
from monitor.sla.vocab import CLOCK_RUNNING, TargetStatus


def next_wake(session: Session) -> datetime | None:
    """When the next clock runs out or reaches its warning instant (a running clock has no
    stop: said, so that the open clocks' indexes serve)."""
    open_clock = col(TargetState.stop).is_(None)
    deadline = session.exec(
        select(sa.func.min(TargetState.deadline)).where(
            col(TargetState.status).in_(CLOCK_RUNNING), open_clock
        )
    ).one()
    warning = session.exec(
        select(sa.func.min(TargetState.risk_at)).where(
            TargetState.status == TargetStatus.RUNNING, open_clock
        )
    ).one()
    candidates = []
    if deadline is not None:
        candidates.append(_aware(deadline) + AFTER_DEADLINE)
    if warning is not None:
        candidates.append(_aware(warning))
    return min(candidates, default=None)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
