"""What the SLA core needs from the outside world, and storing what it decides."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session, col, select

from monitor.audit import service as audit
from monitor.breaches.findings import Thresholds, refresh_ticket_findings
from monitor.breaches.service import sync_breaches
from monitor.calendars.calendar import WorkCalendar
from monitor.calendars.service import current_calendar
from monitor.catalog.models import Catalog, load_catalog
from monitor.core import wake
from monitor.core.clock import Clock
from monitor.core.errors import ConfigError
from monitor.core.settings import Settings
from monitor.metrics import totals
from monitor.sla.models import PolicyVersion, TargetState
from monitor.sla.policy import Policy, PolicySet, load_policy_file
from monitor.sla.timer import Judgement, TimelineEvent, apply_corrections, judge
from monitor.tickets.models import Event, Ticket


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

    @property
    def thresholds(self) -> Thresholds:
        s = self.settings
        return Thresholds(
            overdue_factor=s.finding_overdue_factor,
            late_entry=timedelta(hours=s.finding_late_entry_hours),
            late_verification=timedelta(hours=s.finding_late_verification_hours),
        )

    def now(self) -> datetime:
        return self.clock.now()


def sync_policies(session: Session, settings: Settings, now: datetime) -> PolicySet:
    """Store each configured policy version the first time it is seen; refuse silent edits."""
    configured = load_policy_file(settings.config_dir).policies
    stored = {p.version: p for p in session.exec(select(PolicyVersion)).all()}
    for policy in configured:
        body = policy.model_dump(mode="json")
        digest = policy.digest()
        row = stored.get(policy.version)
        if row is not None and row.digest == digest:
            continue
        if row is not None:
            used = session.exec(
                select(sa.func.count())
                .select_from(Ticket)
                .where(Ticket.policy_version == policy.version)
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


def load_context(session: Session, settings: Settings, clock: Clock) -> SlaContext:
    now = clock.now()
    return SlaContext(
        settings=settings,
        catalog=load_catalog(settings.config_dir),
        policies=sync_policies(session, settings, now),
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
        from monitor.calendars.models import CalendarLoad

        if self._base is None:
            self._base = load_context(session, self.settings, self.clock)
            self._calendar_version = session.exec(select(sa.func.max(CalendarLoad.id))).one()
            return self._base
        version = session.exec(select(sa.func.max(CalendarLoad.id))).one()
        if version != self._calendar_version:
            self._base.calendar = current_calendar(session, self.settings.config_dir)
            self._calendar_version = version
        return self._base


def timeline_of(events: Sequence[Event]) -> list[TimelineEvent]:
    by_id = {e.id: e for e in events}
    out = []
    for e in events:
        corrected = by_id.get(e.corrects_id) if e.corrects_id else None
        out.append(
            TimelineEvent(
                seq=e.seq,
                type=e.type,
                at=e.occurred_at,
                ref=f"#{e.seq}" + (f"({e.client_id})" if e.client_id else ""),
                severity=e.severity,
                corrects=corrected.seq if corrected else None,
                reason=e.reason,
            )
        )
    return out


def ticket_events(session: Session, ticket_id: int) -> list[Event]:
    return list(
        session.exec(
            select(Event).where(Event.ticket_id == ticket_id).order_by(col(Event.seq))
        ).all()
    )


def judge_ticket(
    ctx: SlaContext, ticket: Ticket, events: Sequence[Event], now: datetime | None = None
) -> Judgement:
    policy = ctx.policies.version(ticket.policy_version)
    return judge(
        timeline_of(events), ticket.severity, policy, ctx.calendar, now or ctx.now(), ctx.tz
    )


def store_judgement(
    session: Session, ticket: Ticket, judgement: Judgement, now: datetime
) -> list[TargetState]:
    """Rewrite the ticket's target states and derived fields to match the judgement."""
    assert ticket.id is not None
    ticket_id = ticket.id
    existing = {
        s.target: s
        for s in session.exec(select(TargetState).where(TargetState.ticket_id == ticket_id)).all()
    }
    keep = set()
    states = []
    for res in judgement.targets:
        keep.add(res.target)
        values: dict[str, Any] = {
            "name": res.name,
            "pool": ticket.pool,
            "severity": judgement.severity,
            "policy_version": ticket.policy_version,
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
        state = existing.get(res.target)
        if state is None:
            state = TargetState(ticket_id=ticket_id, target=res.target, **values)
        else:
            totals.count_state(session, state, -1)
            for key, value in values.items():
                setattr(state, key, value)
        totals.count_state(session, state, +1)
        session.add(state)
        states.append(state)
    for target, state in existing.items():
        if target not in keep:
            totals.count_state(session, state, -1)
            session.delete(state)
    ticket.current_severity = judgement.severity
    ticket.status = judgement.status
    session.add(ticket)
    session.flush()
    return states


def _seconds(delta: timedelta | None) -> float | None:
    return None if delta is None else delta.total_seconds()


def rejudge(
    session: Session, ctx: SlaContext, ticket: Ticket, now: datetime | None = None
) -> Judgement:
    """Judge the ticket at `now` and store everything that follows from it, in this transaction:
    target states, breaches (detected as soon as they are known) and findings."""
    now = now or ctx.now()
    assert ticket.id is not None
    events = ticket_events(session, ticket.id)
    # The reported time follows its latest correction; scoring and lists go by it.
    reported = next(x for x in apply_corrections(timeline_of(events)) if x.type == "reported")
    ticket.reported_at = reported.at
    judgement = judge_ticket(ctx, ticket, events, now)
    states = store_judgement(session, ticket, judgement, now)
    sync_breaches(session, ticket, states, now)
    refresh_ticket_findings(
        session,
        ticket,
        events,
        states,
        ctx.policies.version(ticket.policy_version),
        now,
        ctx.tz,
        ctx.thresholds,
    )
    wake.publish(session, next_instant(states))
    return judgement


def next_instant(states: Sequence[TargetState]) -> datetime | None:
    """The earliest moment at which one of these states changes by itself."""
    instants = [s.deadline for s in states if s.status in ("running", "at_risk") and s.deadline]
    instants += [s.risk_at for s in states if s.status == "running" and s.risk_at]
    return min(instants, default=None)
