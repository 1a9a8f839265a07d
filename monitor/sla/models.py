"""Stored SLA state: each ticket's targets as last judged, and every policy version seen."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import AutoString, Field, SQLModel

from monitor.core.models_base import instant, text
from monitor.sla.vocab import TargetStatus

# A clock with no stop yet: running, at risk, paused, or breached and still running.
OPEN_CLOCK = sa.text("stop IS NULL")


class TargetState(SQLModel, table=True):
    """A ticket × target as last judged; rewritten in the same transaction as each event."""

    __tablename__ = "target_states"
    __table_args__ = (
        # Open clocks only (a stopped clock never wakes the scheduler): most states are
        # stopped, and indexing their deadlines, scattered over years, cost a batch of new
        # tickets more pages to write than any other index. A query that uses these says
        # `stop IS NULL` (`OPEN_CLOCK`), as the planners need to see it to use them.
        sa.Index(
            "ix_target_states_open_deadline",
            "status",
            "deadline",
            sqlite_where=OPEN_CLOCK,
            postgresql_where=OPEN_CLOCK,
        ),
        sa.Index(
            "ix_target_states_open_risk_at",
            "status",
            "risk_at",
            sqlite_where=OPEN_CLOCK,
            postgresql_where=OPEN_CLOCK,
        ),
        # (No index for the metrics: a scrape reads the running totals, and only the daily
        # correction of those reads every state, in a snapshot that blocks no writer.)
    )

    ticket_id: int = Field(foreign_key="tickets.id", primary_key=True)
    target: str = Field(max_length=64, primary_key=True)
    name: str = Field(max_length=128)
    pool: str = Field(max_length=32, description="the ticket's pool, kept here for aggregates")
    severity: str = Field(max_length=32)
    policy_version: str = Field(max_length=64)
    status: TargetStatus = Field(sa_type=AutoString(length=20))
    start: datetime | None = instant(nullable=True)
    deadline: datetime | None = instant(nullable=True)
    stop: datetime | None = instant(nullable=True)
    risk_at: datetime | None = instant(nullable=True)
    elapsed_seconds: float | None = None
    overrun_seconds: float | None = None
    paused_seconds: float = 0.0
    calendar: str = Field(max_length=16)
    duration: str = Field(max_length=16)
    unknown_year: int | None = None
    explain: str = text()
    judged_at: datetime = instant()


@dataclass(slots=True)
class StateRow:
    """A new ticket's target state as a plain row, with `TargetState`'s fields: the flow
    inserts it with one Core statement and only reads it, and an ORM object costs far more to
    build (an import builds three or four a ticket)."""

    ticket_id: int
    target: str
    name: str
    pool: str
    severity: str
    policy_version: str
    status: TargetStatus
    start: datetime | None
    deadline: datetime | None
    stop: datetime | None
    risk_at: datetime | None
    elapsed_seconds: float | None
    overrun_seconds: float | None
    paused_seconds: float
    calendar: str
    duration: str
    unknown_year: int | None
    explain: str
    judged_at: datetime


# A judged target state: the stored ORM row, or a new ticket's plain one.
JudgedState = TargetState | StateRow


class PolicyVersion(SQLModel, table=True):
    """A policy as it was first seen; its version can never be given other content."""

    __tablename__ = "policy_versions"

    version: str = Field(max_length=64, primary_key=True)
    effective_from: date
    digest: str = Field(max_length=64)
    body: dict[str, Any] = Field(sa_type=sa.JSON)
    loaded_at: datetime = instant()
