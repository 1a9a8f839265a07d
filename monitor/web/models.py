"""Browser sessions and failed-login counters; the session secret is stored only hashed."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from monitor.core.models_base import instant


class WebSession(SQLModel, table=True):
    """A logged-in browser: found by the hash of its cookie, ended by logout or expiry."""

    __tablename__ = "web_sessions"

    token_hash: str = Field(max_length=64, primary_key=True)
    user_name: str = Field(max_length=128, index=True)
    csrf: str = Field(max_length=64)
    created_at: datetime = instant()
    expires_at: datetime = instant()


class LoginFailure(SQLModel, table=True):
    """Failed logins per user name, so repeated guessing is slowed down and then locked out."""

    __tablename__ = "login_failures"

    user_name: str = Field(max_length=128, primary_key=True)
    failures: int = 0
    last_failed_at: datetime = instant()
    locked_until: datetime | None = instant(nullable=True)
