"""What the SLA core needs from the outside world, and storing what it decides."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session, col, select

from monitor.audit import service as audit
from monitor.calendars.calendar import WorkCalendar
from monitor.calendars.models import CalendarLoad
from monitor.calendars.service import current_calendar
from monitor.catalog.models import Catalog, load_catalog
from monitor.core.batch import driver_rows
from monitor.core.clock import Clock
from monitor.core.errors import ConfigError
from monitor.core.settings import Settings
from monitor.sla.models import PolicyVersion, TargetState
from monitor.sla.policy import Policy, PolicySet, load_policy_file
from monitor.sla.timer import TargetResult


@dataclass
class SlaContext:
    """Catalog, policies, calendar and clock, loaded once per unit of work."""

    settings: Settings
    catalog: Catalog
    policies: PolicySet
    calendar: WorkCalendar
    clock: Clock

    @property
    def tz(self) -> ZoneInfo:
        return self.settings.tz

    def now(self) -> datetime:
        return self.clock.now()


# On PostgreSQL this advisory lock (a space and key of their own) serializes the storing of
# policy versions: two replicas starting on a new database both found a version missing, and
# the second's insert failed on the unique version (its start with it).
POLICY_LOCK = (1320, 0)


def sync_policies(session: Session, settings: Settings, now: datetime) -> PolicySet:
    """Store each configured policy version the first time it is seen; refuse silent edits.
    Only when one is missing or differs is the policies' lock taken (PostgreSQL; SQLite's
    writers take turns already) and what is stored read again under it."""
    configured = load_policy_file(settings.config_dir).policies
    stored = {p.version: p for p in session.exec(select(PolicyVersion)).all()}
    if (
        any(
            stored.get(p.version) is None or stored[p.version].digest != p.digest()
            for p in configured
        )
        and session.get_bind().dialect.name == "postgresql"
    ):
        driver_rows(session, f"SELECT pg_advisory_xact_lock{POLICY_LOCK}")
        # What the other writer stored, now committed, read afresh (rows read above too).
        again = select(PolicyVersion).execution_options(populate_existing=True)
        stored = {p.version: p for p in session.exec(again).all()}
    for policy in configured:
        body = policy.model_dump(mode="json")
        digest = policy.digest()
        row = stored.get(policy.version)
        if row is not None and row.digest == digest:
            continue
        if row is not None:
            used = session.exec(
                select(sa.func.count(sa.distinct(col(TargetState.ticket_id)))).where(
                    TargetState.policy_version == policy.version
                )
            ).one()
            if used:
                raise ConfigError(
                    f"{settings.config_dir / 'sla.yaml'}: policy version {policy.version!r} "
                    f"differs from the one {used} ticket(s) were judged by; add a new version "
                    "with a later effective_from instead of editing it"
                )
            row.body, row.digest, row.effective_from = body, digest, policy.effective_from
            action = "policy.changed"
        else:
            row = PolicyVersion(
                version=policy.version,
                effective_from=policy.effective_from,
                digest=digest,
                body=body,
                loaded_at=now,
            )
            action = "policy.added"
        session.add(row)
        stored[policy.version] = row
        audit.append(
            session,
            at=now,
            actor="system",
            action=action,
            entity="policy",
            entity_id=policy.version,
            payload=body,
        )
    session.flush()
    return PolicySet([Policy.model_validate(r.body) for r in stored.values()])


def read_policies(session: Session, settings: Settings) -> PolicySet:
    """The stored policy versions plus any configured one not stored yet; writes nothing."""
    stored = {
        p.version: Policy.model_validate(p.body) for p in session.exec(select(PolicyVersion)).all()
    }
    for policy in load_policy_file(settings.config_dir).policies:
        stored.setdefault(policy.version, policy)
    return PolicySet(list(stored.values()))


def load_context(
    session: Session, settings: Settings, clock: Clock, *, write: bool = True
) -> SlaContext:
    """Catalog, policies and calendar; a writer also stores new policy versions (audited)."""
    policies = (
        sync_policies(session, settings, clock.now()) if write else read_policies(session, settings)
    )
    return SlaContext(
        settings=settings,
        catalog=load_catalog(settings.config_dir),
        policies=policies,
        calendar=current_calendar(session, settings.config_dir),
        clock=clock,
    )


class ContextCache:
    """A server's SlaContext: catalog and policies loaded once, the calendar re-read only
    when an admin has loaded a new arrangement."""

    def __init__(self, settings: Settings, clock: Clock) -> None:
        self.settings, self.clock = settings, clock
        self._base: SlaContext | None = None
        self._calendar_version: int | None = None

    def get(self, session: Session) -> SlaContext:
        if self._base is None:
            # A read (READ ONLY on PostgreSQL, rolled back on SQLite) stores nothing: it gets
            # a context not kept, and the first writer loads the one kept, storing new
            # policy versions. (The server's start is that writer.)
            if session.get_bind().get_execution_options().get("readonly", False):
                return load_context(session, self.settings, self.clock, write=False)
            self._base = load_context(session, self.settings, self.clock)
            self._calendar_version = self._version(session)
            return self._base
        version = self._version(session)
        if version != self._calendar_version:
            self._base.calendar = current_calendar(session, self.settings.config_dir)
            self._calendar_version = version
        return self._base

    @staticmethod
    def _version(session: Session) -> int | None:
        # By the driver, on the session's connection: every request asks, and the ORM's path
        # (with its flush of whatever the session holds), then SQLAlchemy's statement
        # machinery, cost more than the read.
        rows = driver_rows(session, _CALENDAR_VERSION)
        return rows[0][0] if rows else None


_CALENDAR_VERSION = f"SELECT max(id) FROM {CalendarLoad.__tablename__}"


def state_values(
    res: TargetResult, pool: str, severity: str, policy_version: str, now: datetime
) -> dict[str, Any]:
    """A judged target's stored state, but for its key (ticket id, target): the ticket's
    `severity` is its current one."""
    return {
        "name": res.name,
        "pool": pool,
        "severity": severity,
        "policy_version": policy_version,
        "status": res.status,
        "start": res.start,
        "deadline": res.deadline,
        "stop": res.stop,
        "risk_at": res.risk_at,
        "elapsed_seconds": _seconds(res.elapsed),
        "overrun_seconds": _seconds(res.overrun),
        "paused_seconds": res.paused.total_seconds(),
        "calendar": res.calendar,
        "duration": res.duration,
        "unknown_year": res.unknown_year,
        "explain": res.explain,
        "judged_at": now,
    }


def _seconds(delta: timedelta | None) -> float | None:
    return None if delta is None else delta.total_seconds()
