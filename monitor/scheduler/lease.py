"""A leader lease in the database: among several processes exactly one runs the jobs."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, update

from monitor.scheduler.models import Lease


def acquire(session: Session, name: str, holder: str, now: datetime, ttl: timedelta) -> bool:
    """Take or renew the lease; True if `holder` holds it until now + ttl."""
    result = session.execute(
        update(Lease)
        .where(
            col(Lease.name) == name,
            sa.or_(col(Lease.holder) == holder, col(Lease.expires_at) < now),
        )
        .values(holder=holder, expires_at=now + ttl)
    )
    if result.rowcount:  # type: ignore[attr-defined]
        return True
    if session.get(Lease, name) is not None:
        return False
    try:
        with session.begin_nested():
            session.add(Lease(name=name, holder=holder, expires_at=now + ttl, acquired_at=now))
    except sa.exc.IntegrityError:
        return False
    return True


def release(session: Session, name: str, holder: str, now: datetime) -> None:
    session.execute(
        update(Lease)
        .where(col(Lease.name) == name, col(Lease.holder) == holder)
        .values(expires_at=now)
    )


def holder_of(session: Session, name: str, now: datetime) -> str | None:
    lease = session.get(Lease, name)
    if lease is None or lease.expires_at < now:
        return None
    return lease.holder
