"""Tickets and their append-only timeline."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import AutoString, Field, SQLModel

from monitor.core.models_base import instant, json_list, text
from monitor.sla.vocab import TicketStatus


class Ticket(SQLModel, table=True):
    __tablename__ = "tickets"
    __table_args__ = (
        sa.UniqueConstraint("pool", "external_id"),
        sa.Index("ix_tickets_metrics_open", "status", "pool", "current_severity"),
    )

    id: int | None = Field(default=None, primary_key=True)
    pool: str = Field(max_length=32, index=True)
    # Indexed alone too: the search box finds an external id without knowing its pool.
    external_id: str | None = Field(default=None, max_length=128, index=True)
    severity: str = Field(max_length=32, description="severity the ticket was reported with")
    current_severity: str = Field(max_length=32, index=True)
    title: str = Field(max_length=500)
    description: str = text()
    source: str = Field(max_length=32)
    units: list[str] = json_list()
    systems: list[str] = json_list()
    policy_version: str = Field(max_length=64)
    status: TicketStatus = Field(sa_type=AutoString(length=16), index=True)
    reported_at: datetime = instant(index=True)
    created_at: datetime = instant()
    updated_at: datetime = instant()
    created_by: str = Field(max_length=128)


class Event(SQLModel, table=True):
    """One fact of a ticket's timeline; never updated or deleted."""

    __tablename__ = "events"
    __table_args__ = (
        sa.UniqueConstraint("ticket_id", "seq"),
        sa.UniqueConstraint("ticket_id", "client_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="tickets.id", index=True)
    seq: int
    client_id: str | None = Field(default=None, max_length=128)
    type: str = Field(max_length=32)
    occurred_at: datetime = instant()
    recorded_at: datetime = instant()
    actor: str = Field(max_length=128)
    actor_role: str = Field(max_length=32)
    source: str = Field(max_length=32)
    note: str = text()
    evidence: list[Any] = json_list()
    severity: str | None = Field(default=None, max_length=32)
    corrects_id: int | None = Field(default=None, foreign_key="events.id")
    reason: str | None = text(nullable=True)
