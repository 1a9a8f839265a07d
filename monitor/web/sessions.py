"""Logging in with a user's password: browser sessions, and locking out repeated guessing."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, delete, select

from monitor.auth.models import User
from monitor.auth.service import Principal, authenticate_user
from monitor.web.models import LoginFailure, WebSession

SESSION_COOKIE = "slamon_session"
LOGIN_COOKIE = "slamon_login"
SESSION_LIFETIME = timedelta(hours=10)  # one working day, then log in again
MAX_FAILURES = 5  # consecutive wrong passwords before a user name is locked
LOCK_TIME = timedelta(minutes=15)
MAX_NAME = 128
MAX_PASSWORD = 1024


@dataclass(frozen=True)
class SignedIn:
    """The person behind a browser session, and the token its forms must carry."""

    principal: Principal
    csrf: str


@dataclass(frozen=True)
class LoginResult:
    principal: Principal | None = None
    locked_until: datetime | None = None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def log_in(session: Session, name: str, password: str, now: datetime) -> LoginResult:
    """Check a password unless the name is locked; count failures, lock after MAX_FAILURES."""
    name = name.strip()[:MAX_NAME]
    failure = session.get(LoginFailure, name)
    if failure is not None and failure.locked_until is not None and failure.locked_until > now:
        return LoginResult(locked_until=failure.locked_until)
    found = authenticate_user(session, name, password[:MAX_PASSWORD])
    if found is not None:
        if failure is not None:
            session.delete(failure)
        return LoginResult(principal=found)
    if failure is None or now - failure.last_failed_at > LOCK_TIME:
        failure = failure or LoginFailure(user_name=name, last_failed_at=now)
        failure.failures, failure.locked_until = 0, None
    failure.failures += 1
    failure.last_failed_at = now
    if failure.failures >= MAX_FAILURES:
        failure.locked_until = now + LOCK_TIME
        failure.failures = 0
    session.add(failure)
    return LoginResult(locked_until=failure.locked_until)


def start_session(session: Session, name: str, now: datetime) -> str:
    """A new session for a user who just proved their password; returns the cookie value."""
    token = new_token()
    session.add(
        WebSession(
            token_hash=_digest(token),
            user_name=name,
            csrf=secrets.token_urlsafe(24),
            created_at=now,
            expires_at=now + SESSION_LIFETIME,
        )
    )
    session.exec(delete(WebSession).where(col(WebSession.expires_at) < now))
    return token


def signed_in(session: Session, token: str, now: datetime) -> SignedIn | None:
    """Who holds this cookie, if the session is current and the user still enabled."""
    if not token or len(token) > 100:
        return None
    row = session.get(WebSession, _digest(token))
    if row is None or row.expires_at <= now:
        return None
    user = session.exec(select(User).where(User.name == row.user_name)).first()
    if user is None or user.disabled_at is not None:
        return None
    return SignedIn(Principal(user.name, user.role, user.pool, f"user:{user.id}"), row.csrf)


def end_session(session: Session, token: str) -> None:
    session.exec(delete(WebSession).where(col(WebSession.token_hash) == _digest(token)))


def end_sessions_of(session: Session, name: str) -> None:
    """Log a user out everywhere, e.g. when an admin disables the account."""
    session.exec(delete(WebSession).where(col(WebSession.user_name) == name))
