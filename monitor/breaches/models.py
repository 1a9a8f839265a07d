"""Breaches, their reviews, and data-quality findings."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import AutoString, Field, SQLModel

from monitor.core.models_base import instant, text
from monitor.sla.vocab import CorrectionState, Review


class Breach(SQLModel, table=True):
    """One ticket × target that missed its deadline; reruns never record it twice."""

    __tablename__ = "breaches"
    __table_args__ = (sa.UniqueConstraint("ticket_id", "target"),)

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="tickets.id")  # by the unique (ticket_id, target)
    target: str = Field(max_length=64)
    pool: str = Field(max_length=32, index=True)
    severity: str = Field(max_length=32, index=True)
    deadline: datetime = instant()
    detected_at: datetime = instant(index=True)
    # Set while the current data no longer shows a breach (e.g. after a correction).
    cleared_at: datetime | None = instant(nullable=True)
    # The latest review's decision, kept here for filtering; the reviews are the record.
    review: Review = Field(default=Review.PENDING, sa_type=AutoString(length=16), index=True)
    reviewed_at: datetime | None = instant(nullable=True)


class BreachReview(SQLModel, table=True):
    """A supervisor's decision on a breach; a later review supersedes, never updates."""

    __tablename__ = "breach_reviews"

    id: int | None = Field(default=None, primary_key=True)
    breach_id: int = Field(foreign_key="breaches.id", index=True)
    decision: str = Field(max_length=16)
    reason: str = text()
    reviewer: str = Field(max_length=128)
    reviewed_at: datetime = instant()
    supersedes_id: int | None = Field(default=None, foreign_key="breach_reviews.id")


class Finding(SQLModel, table=True):
    """A data-quality finding for the supervisor, open until its condition clears."""

    __tablename__ = "findings"
    __table_args__ = (sa.Index("ix_findings_open_key", "key", "closed_at"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32, index=True)
    key: str = Field(max_length=200)
    ticket_id: int | None = Field(default=None, foreign_key="tickets.id", index=True)
    pool: str | None = Field(default=None, max_length=32)
    detail: str = text()
    opened_at: datetime = instant(index=True)
    closed_at: datetime | None = instant(nullable=True)


class CorrectionDecision(SQLModel, table=True):
    """A disputed correction and the supervision unit's decision on it; append-only, the
    latest row for a correction decides whether the clock uses it."""

    __tablename__ = "correction_decisions"

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="tickets.id", index=True)
    correction_seq: int
    decision: CorrectionState = Field(sa_type=AutoString(length=16))
    reason: str = Field(default="", max_length=2000)
    actor: str = Field(max_length=128)
    decided_at: datetime = instant()
