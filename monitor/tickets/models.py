"""Tickets and their append-only timeline."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple, Protocol

import sqlalchemy as sa
from sqlmodel import AutoString, Field, SQLModel

from monitor.core.models_base import instant, json_list, text
from monitor.sla.vocab import TicketStatus

# Only a severity_changed event moves a ticket into or out of a severity's scope after it was
# reported. A literal, not a bound parameter, so that SQLite uses the partial index below.
SEVERITY_CHANGED = sa.text("type = 'severity_changed'")
# Events that carry evidence, as each database stores an empty list (the JSON text `[]`).
WITH_EVIDENCE_SQLITE = sa.text("evidence != '[]'")
WITH_EVIDENCE_POSTGRES = sa.text("evidence::text != '[]'")


class Ticket(SQLModel, table=True):
    __tablename__ = "tickets"
    __table_args__ = (
        sa.UniqueConstraint("pool", "external_id"),
        sa.Index("ix_tickets_metrics_open", "status", "pool", "current_severity"),
        # The year-end scope: tickets reported with a severity within a year.
        sa.Index("ix_tickets_severity_reported_at", "severity", "reported_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    pool: str = Field(max_length=32)  # found by the unique (pool, external_id) index
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
    status: TicketStatus = Field(sa_type=AutoString(length=16))  # by ix_tickets_metrics_open
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
        # The few tickets whose severity changed, for the year-end scope.
        sa.Index(
            "ix_events_severity_changed",
            "ticket_id",
            sqlite_where=SEVERITY_CHANGED,
            postgresql_where=SEVERITY_CHANGED,
        ),
        # What an append to a long ticket seeks instead of reading the whole timeline
        # (tickets/service.append_event): the first and last of a type, the first of a type
        # at or after an instant, and the first event with evidence after one.
        sa.Index("ix_events_ticket_type_time", "ticket_id", "type", "occurred_at", "seq"),
        sa.Index(
            "ix_events_with_evidence",
            "ticket_id",
            "occurred_at",
            "seq",
            sqlite_where=WITH_EVIDENCE_SQLITE,
            postgresql_where=WITH_EVIDENCE_POSTGRES,
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    # Found by the unique (ticket_id, seq), whose first column it is: no index of its own.
    ticket_id: int = Field(foreign_key="tickets.id")
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


class StoredEvent(Protocol):
    """What reading a timeline needs of an event: an `Event` or an `EventRow` alike."""

    @property
    def id(self) -> int | None: ...
    @property
    def ticket_id(self) -> int: ...
    @property
    def seq(self) -> int: ...
    @property
    def client_id(self) -> str | None: ...
    @property
    def type(self) -> str: ...
    @property
    def occurred_at(self) -> datetime: ...
    @property
    def recorded_at(self) -> datetime: ...
    @property
    def actor(self) -> str: ...
    @property
    def actor_role(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def note(self) -> str: ...
    @property
    def evidence(self) -> list[Any]: ...
    @property
    def severity(self) -> str | None: ...
    @property
    def corrects_id(self) -> int | None: ...
    @property
    def reason(self) -> str | None: ...


class EventRow(NamedTuple):
    """A stored event read as a plain row: the write flow reads a whole timeline per write,
    and an ORM object costs ~20x more to build and to read than this (a tuple, not a frozen
    dataclass, whose field-by-field construction was a quarter of reading a long timeline)."""

    id: int
    ticket_id: int
    seq: int
    client_id: str | None
    type: str
    occurred_at: datetime
    recorded_at: datetime
    actor: str
    actor_role: str
    source: str
    note: str
    evidence: list[Any]
    severity: str | None
    corrects_id: int | None
    reason: str | None
