"""API tokens and users; secrets are stored only as hashes."""

from __future__ import annotations

from datetime import datetime

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
    expires_at: datetime | None = instant(nullable=True)


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=128, unique=True)
    password_hash: str = Field(max_length=256)
    role: str = Field(max_length=16)
    pool: str | None = Field(default=None, max_length=32)
    created_at: datetime = instant()
    disabled_at: datetime | None = instant(nullable=True)
