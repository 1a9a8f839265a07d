"""The outbox: one notice per (ticket, target, kind), one delivery per channel address, and
every attempt to deliver it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import AutoString, Field, SQLModel

from monitor.core.models_base import instant, text


class NoticeKind(StrEnum):
    """Why people are told: a clock nearly out, a clock out, a breach left unreviewed, next
    year's calendar missing."""

    AT_RISK = "at_risk"
    BREACHED = "breached"
    REVIEW_DUE = "review_due"
    CALENDAR_MISSING = "calendar_missing"


KIND_LABELS = {
    "at_risk": "即将超时",
    "breached": "超时",
    "review_due": "超时待复核",
    "calendar_missing": "次年日历未载入",
}


class DeliveryStatus(StrEnum):
    """A delivery is tried (pending) until it is sent or its retries run out (failed)."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


DELIVERY_LABELS = {"pending": "待发送", "sent": "已送达", "failed": "发送失败"}


class Notice(SQLModel, table=True):
    """What happened, as it stood when it was decided; `key` makes it happen once."""

    __tablename__ = "notices"

    id: int | None = Field(default=None, primary_key=True)
    # `kind:ticket:target` (or `calendar_missing:year`): a rerun, a replica or a restart
    # inserting it again changes nothing.
    key: str = Field(max_length=200, unique=True)
    kind: NoticeKind = Field(sa_type=AutoString(length=32), index=True)
    ticket_id: int | None = Field(default=None, foreign_key="tickets.id", index=True)
    target: str | None = Field(default=None, max_length=64)
    pool: str | None = Field(default=None, max_length=32)
    severity: str | None = Field(default=None, max_length=32)
    # Snapshots of the names people read, so a later catalog edit does not rewrite a notice.
    ticket_ref: str | None = Field(default=None, max_length=200)
    title: str | None = Field(default=None, max_length=500)
    pool_name: str | None = Field(default=None, max_length=100)
    severity_name: str | None = Field(default=None, max_length=100)
    target_name: str | None = Field(default=None, max_length=100)
    deadline: datetime | None = instant(nullable=True)
    # When the condition began (the breach detected, the review waiting since…).
    since: datetime | None = instant(nullable=True)
    detail: str = text()
    created_at: datetime = instant(index=True)


class Delivery(SQLModel, table=True):
    """One notice to one channel address, until it is sent or given up on."""

    __tablename__ = "notice_deliveries"
    __table_args__ = (
        sa.UniqueConstraint("notice_id", "channel", "endpoint"),
        sa.Index("ix_notice_deliveries_due", "status", "next_attempt_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    notice_id: int = Field(foreign_key="notices.id")  # by the unique (notice_id, ...)
    channel: str = Field(max_length=64)
    # A digest of the address (addresses carry secrets and live only in the environment),
    # and the address with its secrets masked, for people.
    endpoint: str = Field(max_length=32)
    endpoint_label: str = Field(max_length=300)
    status: DeliveryStatus = Field(default=DeliveryStatus.PENDING, sa_type=AutoString(length=16))
    attempts: int = 0
    next_attempt_at: datetime | None = instant(nullable=True)
    # A sender that took the delivery holds it until then; a crashed one lets it go.
    claimed_until: datetime | None = instant(nullable=True)
    sent_at: datetime | None = instant(nullable=True)
    last_error: str = text()
    created_at: datetime = instant()


class DeliveryAttempt(SQLModel, table=True):
    """One try at a delivery, kept whether it worked or not."""

    __tablename__ = "notice_attempts"

    id: int | None = Field(default=None, primary_key=True)
    delivery_id: int = Field(foreign_key="notice_deliveries.id", index=True)
    number: int
    started_at: datetime = instant()
    finished_at: datetime = instant()
    ok: bool
    error: str = text()
