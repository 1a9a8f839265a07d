"""Tokens (high-entropy, looked up by prefix, stored hashed) and argon2id passwords."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from sqlmodel import Session, col, select

from monitor.audit import service as audit
from monitor.auth.models import ApiToken, User
from monitor.core.db import DriverReader, stored_instant
from monitor.core.errors import DomainError, InvalidInput, NotFound, Problem

ROLES = ("operator", "supervisor", "admin", "evaluator")
_TOKEN = (
    "SELECT secret_hash, name, role, pool, revoked_at, expires_at FROM api_tokens WHERE prefix = ?"
)
TOKEN_PREFIX = "slm"
_hasher = PasswordHasher()  # argon2id with the library's current defaults


@dataclass(frozen=True)
class Principal:
    """Who is calling: a name, a role, and the one pool an operator is limited to."""

    name: str
    role: str
    pool: str | None = None
    credential: str = ""  # the token or account that authenticated, e.g. token:1a2b3c4d

    @property
    def key(self) -> str:
        """What an Idempotency-Key belongs to: the very token or account that sent it."""
        return self.credential or f"{self.role}:{self.name}"


def _check_role(role: str, pool: str | None, known_pools: list[str]) -> None:
    problems = []
    if role not in ROLES:
        problems.append(Problem("role", f"unknown role {role!r} (known: {', '.join(ROLES)})"))
    if role == "operator" and not pool:
        problems.append(Problem("pool", "an operator belongs to exactly one pool"))
    if role != "operator" and pool:
        problems.append(Problem("pool", f"only operators are limited to a pool, not {role}"))
    if pool and pool not in known_pools:
        problems.append(Problem("pool", f"unknown pool {pool!r}"))
    if problems:
        raise InvalidInput(problems)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(
    session: Session,
    *,
    name: str,
    role: str,
    pool: str | None,
    known_pools: list[str],
    now: datetime,
    actor: str = "admin",
    expires_at: datetime | None = None,
) -> tuple[ApiToken, str]:
    """A new token; the plain value is returned once and never stored."""
    _check_role(role, pool, known_pools)
    if expires_at is not None and expires_at <= now:
        raise InvalidInput([Problem("expires", "the expiry must lie in the future")])
    prefix = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)  # 256 random bits
    row = ApiToken(
        prefix=prefix,
        secret_hash=_digest(secret),
        name=name,
        role=role,
        pool=pool,
        created_at=now,
        expires_at=expires_at,
    )
    session.add(row)
    session.flush()
    audit.append(
        session,
        at=now,
        actor=actor,
        action="token.created",
        entity="token",
        entity_id=prefix,
        payload={
            "name": name,
            "role": role,
            "pool": pool,
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
    )
    return row, f"{TOKEN_PREFIX}_{prefix}_{secret}"


def list_tokens(session: Session) -> list[ApiToken]:
    return list(session.exec(select(ApiToken).order_by(col(ApiToken.id))).all())


def revoke_token(session: Session, ref: str, *, actor: str, now: datetime) -> ApiToken:
    """Revoke a token by id or prefix (audited); every replica refuses it from now on,
    since each request looks its token up."""
    query = select(ApiToken).where(ApiToken.prefix == ref)
    if ref.isdigit() and len(ref) <= 9:
        query = select(ApiToken).where(
            sa.or_(col(ApiToken.id) == int(ref), col(ApiToken.prefix) == ref)
        )
    row = session.exec(query).first()
    if row is None:
        raise NotFound(f"no token {ref!r} (see `sla-monitor token list`)")
    if row.revoked_at is not None:
        raise DomainError(f"token {ref} was already revoked at {row.revoked_at.isoformat()}")
    row.revoked_at = now
    session.add(row)
    audit.append(
        session,
        at=now,
        actor=actor,
        action="token.revoked",
        entity="token",
        entity_id=row.prefix,
        payload={"name": row.name, "role": row.role, "pool": row.pool},
    )
    return row


def authenticate_token(reader: DriverReader, value: str, now: datetime) -> Principal | None:
    """The token's principal, or None; read afresh every time, so a revocation holds at once
    (by the driver: every API request pays for this read)."""
    parts = value.split("_", 2)
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
        return None
    row = reader.first(_TOKEN, parts[1])
    if row is None:
        return None
    secret_hash, name, role, pool, revoked_at, expires_at = row
    if revoked_at is not None:
        return None
    expires = stored_instant(expires_at)
    if expires is not None and expires <= now:
        return None
    if not hmac.compare_digest(secret_hash, _digest(parts[2])):
        return None
    return Principal(name, role, pool, f"token:{parts[1]}")


def create_user(
    session: Session,
    *,
    name: str,
    password: str,
    role: str,
    pool: str | None,
    known_pools: list[str],
    now: datetime,
    actor: str = "admin",
) -> User:
    _check_role(role, pool, known_pools)
    problems = []
    if not name.strip():
        problems.append(Problem("name", "a user needs a name"))
    if len(password) < 12:
        problems.append(Problem("password", "at least 12 characters"))
    if session.exec(select(User).where(User.name == name)).first() is not None:
        problems.append(Problem("name", f"user {name!r} exists already"))
    if problems:
        raise InvalidInput(problems)
    user = User(
        name=name, password_hash=_hasher.hash(password), role=role, pool=pool, created_at=now
    )
    session.add(user)
    session.flush()
    audit.append(
        session,
        at=now,
        actor=actor,
        action="user.created",
        entity="user",
        entity_id=name,
        payload={"name": name, "role": role, "pool": pool},
    )
    return user


def authenticate_user(session: Session, name: str, password: str) -> Principal | None:
    user = session.exec(select(User).where(User.name == name)).first()
    if user is None or user.disabled_at is not None:
        _hasher.hash(password)  # same cost whether or not the user exists
        return None
    try:
        _hasher.verify(user.password_hash, password)
    except VerificationError:
        return None
    return Principal(user.name, user.role, user.pool, f"user:{user.id}")


def list_users(session: Session) -> list[User]:
    return list(session.exec(select(User).order_by(col(User.name))).all())


def set_user_disabled(
    session: Session, name: str, *, disabled: bool, now: datetime, actor: str
) -> User:
    """Disable an account (it can no longer log in) or enable it again; audited either way."""
    user = session.exec(select(User).where(User.name == name)).first()
    if user is None:
        raise NotFound(f"no user {name!r}")
    user.disabled_at = now if disabled else None
    session.add(user)
    audit.append(
        session,
        at=now,
        actor=actor,
        action="user.disabled" if disabled else "user.enabled",
        entity="user",
        entity_id=name,
        payload={"name": name},
    )
    return user
