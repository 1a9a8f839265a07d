"""API tokens and users; secrets are stored only as hashes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from monitor.core.models_base import instant


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_tokens"

    id: int | None = Field(default=None, primary_key=True)
    prefix: str = Field(max_length=16, unique=True)
    secret_hash: str = Field(max_length=64)
    name: str = Field(max_length=128)
    role: str = Field(max_length=16)
    pool: str | None = Field(default=None, max_length=32)
    created_at: datetime = instant()
    revoked_at: datetime | None = instant(nullable=True)


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=128, unique=True)
    password_hash: str = Field(max_length=256)
    role: str = Field(max_length=16)
    pool: str | None = Field(default=None, max_length=32)
    created_at: datetime = instant()


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


class Evidence(SQLModel, table=True):
    """A stored file, addressed by its content; never overwritten."""

    __tablename__ = "evidence"

    sha256: str = Field(max_length=64, primary_key=True)
    size: int
    media_type: str = Field(max_length=128)
    uploaded_by: str = Field(max_length=128)
    uploaded_at: datetime = instant()


class EvidenceLink(SQLModel, table=True):
    """Which ticket a stored file belongs to; the file is only served with the ticket's rights."""

    __tablename__ = "evidence_links"

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="tickets.id", index=True)
    sha256: str = Field(foreign_key="evidence.sha256", max_length=64, index=True)
    filename: str = Field(max_length=255)
    linked_at: datetime = instant()
