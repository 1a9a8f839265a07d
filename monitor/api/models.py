"""The API's own table: Idempotency-Keys and the answers they replay."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from monitor.core.models_base import instant


class IdempotencyKey(SQLModel, table=True):
    """A write's Idempotency-Key, kept with the write so a retry replays its answer."""

    __tablename__ = "idempotency_keys"

    principal: str = Field(max_length=160, primary_key=True)
    key: str = Field(max_length=255, primary_key=True)
    request_hash: str = Field(max_length=64)
    state: str = Field(max_length=16)  # in_flight | done
    locked_at: datetime = instant()
    status_code: int | None = None
    response: Any = Field(default=None, sa_type=sa.JSON, nullable=True)
    headers: dict[str, str] | None = Field(default=None, sa_type=sa.JSON, nullable=True)
