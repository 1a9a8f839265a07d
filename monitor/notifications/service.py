"""Writing notices into the outbox inside the caller's transaction, and reading it back."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from monitor.breaches.models import Breach
from monitor.core import wake
from monitor.core.errors import NotFound
from monitor.notifications.models import (
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
    Notice,
    NoticeKind,
)
from monitor.notifications.routing import Routing, load_routing
from monitor.sla.models import JudgedState, TargetState
from monitor.sla.vocab import Review, TargetStatus
from monitor.tickets.models import Ticket

log = logging.getLogger(__name__)


class NoticeNotFound(NotFound):
    pass


class Context(Protocol):
    """What enqueueing needs from the unit of work (an SlaContext fits)."""

    @property
    def settings(self) -> Any: ...
    @property
    def catalog(self) -> Any: ...
    @property
    def policies(self) -> Any: ...
    @property
    def clock(self) -> Any: ...


def routing_of(ctx: Context) -> Routing:
    return load_routing(ctx.settings.config_dir, ctx.settings.notify_urls)


def enqueue_for_states(
    session: Session, ctx: Context, ticket: Ticket, states: Sequence[JudgedState], now: datetime
) -> int:
    """The write flow's one call: `at_risk` and `breached` notices for the judged targets."""
    return enqueue(session, ctx, notices_for_states(ctx, ticket, states, now), now)


def notices_for_states(
    ctx: Context,
    ticket: Ticket | Any,
    states: Sequence[JudgedState],
    now: datetime,
    routing: Routing | None = None,
) -> list[dict[str, Any]]:
    """The `at_risk` and `breached` notices the judged targets call for, as `enqueue`
    takes them (a new ticket's are made with its other rows, from its row as attributes).

    A key per (ticket, target, kind) makes a re-judgement, a replica or a rerun harmless;
    a breach recorded long after its deadline (history being entered) pages nobody."""
    if not any(s.status in (TargetStatus.AT_RISK, TargetStatus.BREACHED) for s in states):
        return []  # most writes: nothing to say, and no need to look at the routing
    routing = routing or routing_of(ctx)  # (a batch's, read once)
    out = []
    for state in states:
        if state.status == TargetStatus.AT_RISK:
            kind = NoticeKind.AT_RISK
        elif state.status == TargetStatus.BREACHED and state.deadline is not None:
            if now - state.deadline > routing.history:
                continue
            kind = NoticeKind.BREACHED
        else:
            continue
        out.append(
            {
                "key": f"{kind}:{ticket.id}:{state.target}",
                "kind": kind,
                **_ticket_fields(ctx, ticket, state.target, state.name, state.severity),
                "deadline": state.deadline,
                "since": now,
            }
        )
    return out


def enqueue(session: Session, ctx: Context, notices: list[dict[str, Any]], now: datetime) -> int:
    """Put the notices into the outbox, each with its deliveries, but those whose key is
    there already; how many were new."""
    if not notices:
        return 0
    routing = routing_of(ctx)
    return sum(_enqueue(session, routing, now, **values) for values in notices)


def enqueue_review_due(session: Session, ctx: Context, now: datetime) -> int:
    """Periodic: breaches still unreviewed `review_due_hours` after detection reach the
    supervision unit, once each."""
    routing = routing_of(ctx)
    rows = session.exec(
        select(Breach, Ticket)
        .join(Ticket, col(Ticket.id) == Breach.ticket_id)
        .where(
            Breach.review == Review.PENDING,
            col(Breach.cleared_at).is_(None),
            col(Breach.detected_at) <= now - routing.review_due,
        )
    ).all()
    if not rows:
        return 0
    keys = {f"review_due:{b.ticket_id}:{b.target}": (b, t) for b, t in rows}
    known = set(session.exec(select(Notice.key).where(col(Notice.key).in_(keys))).all())
    made = 0
    for key, (breach, ticket) in keys.items():
        if key in known or breach.detected_at - breach.deadline > routing.history:
            continue
        state = session.get(TargetState, (breach.ticket_id, breach.target))
        made += _enqueue(
            session,
            routing,
            now,
            key=key,
            kind=NoticeKind.REVIEW_DUE,
            **_ticket_fields(
                ctx, ticket, breach.target, state.name if state else breach.target, breach.severity
            ),
            deadline=breach.deadline,
            since=breach.detected_at,
        )
    return made


def enqueue_calendar_missing(
    session: Session, ctx: Context, found: Iterable[Any], now: datetime
) -> int:
    """From the daily job: next year's calendar is not loaded (one notice per year)."""
    routing = routing_of(ctx)
    made = 0
    for f in found:
        if f.kind == NoticeKind.CALENDAR_MISSING:
            year = f.key.rsplit(":", 1)[-1]
            made += _enqueue(
                session,
                routing,
                now,
                key=f.key,
                kind=NoticeKind.CALENDAR_MISSING,
                title=f"{year} 年工作日历尚未载入",
                detail=f.detail,
                since=now,
            )
    return made


def _ticket_fields(
    ctx: Context, ticket: Ticket, target: str, target_name: str, severity: str
) -> dict[str, Any]:
    pool = ctx.catalog.pool(ticket.pool)
    levels = ctx.policies.version(ticket.policy_version).severities
    return {
        "ticket_id": ticket.id,
        "target": target,
        "pool": ticket.pool,
        "severity": severity,
        "ticket_ref": ticket.external_id or f"#{ticket.id}",
        "title": ticket.title[:500],
        "pool_name": pool.name if pool else ticket.pool,
        "severity_name": levels[severity].name if severity in levels else severity,
        "target_name": target_name,
    }


def _insert_ignoring_duplicates(session: Session, table: Any, values: dict[str, Any]) -> Any:
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(table).values(**values).on_conflict_do_nothing().returning(table.c.id)
    return session.connection().execute(statement).scalar_one_or_none()


def _enqueue(session: Session, routing: Routing, now: datetime, **values: Any) -> int:
    """Insert the notice and its deliveries unless its key exists; 1 if it is new."""
    table = Notice.__table__  # type: ignore[attr-defined]
    row = {**values, "created_at": now, "detail": values.get("detail", "")}
    notice_id = _insert_ignoring_duplicates(session, table, row)
    if notice_id is None:
        return 0
    for channel in routing.channels_for(values["kind"], values.get("pool"), values.get("severity")):
        for endpoint in routing.endpoints[channel]:
            session.add(
                Delivery(
                    notice_id=notice_id,
                    channel=channel,
                    endpoint=endpoint.key,
                    endpoint_label=endpoint.label,
                    next_attempt_at=now,
                    created_at=now,
                )
            )
    session.flush()
    return 1


# Reading the outbox ------------------------------------------------------------------------


@dataclass(frozen=True)
class NoticeRow:
    notice: Notice
    deliveries: list[Delivery]


def list_notices(session: Session, *, failed: bool = False, limit: int = 100) -> list[NoticeRow]:
    """The newest notices (only those with a failed delivery when `failed`), newest first."""
    query = select(Notice)
    if failed:
        query = query.where(
            col(Notice.id).in_(
                select(Delivery.notice_id).where(Delivery.status == DeliveryStatus.FAILED)
            )
        )
    notices = session.exec(query.order_by(col(Notice.id).desc()).limit(limit)).all()
    by_notice: dict[int, list[Delivery]] = {n.id: [] for n in notices if n.id is not None}
    if by_notice:
        for d in session.exec(
            select(Delivery)
            .where(col(Delivery.notice_id).in_(by_notice))
            .order_by(col(Delivery.id))
        ).all():
            by_notice[d.notice_id].append(d)
    return [NoticeRow(n, by_notice[n.id]) for n in notices if n.id is not None]


def attempts_of(session: Session, delivery_id: int) -> list[DeliveryAttempt]:
    return list(
        session.exec(
            select(DeliveryAttempt)
            .where(DeliveryAttempt.delivery_id == delivery_id)
            .order_by(col(DeliveryAttempt.id))
        ).all()
    )


def retry_notice(session: Session, notice_id: int, now: datetime) -> list[Delivery]:
    """Put a notice's failed deliveries back in the queue with a fresh round of attempts."""
    if session.get(Notice, notice_id) is None:
        raise NoticeNotFound(f"没有编号为 {notice_id} 的通知")
    failed = session.exec(
        select(Delivery).where(
            Delivery.notice_id == notice_id, Delivery.status == DeliveryStatus.FAILED
        )
    ).all()
    for d in failed:
        d.status, d.attempts, d.next_attempt_at, d.claimed_until = (
            DeliveryStatus.PENDING,
            0,
            now,
            None,
        )
        session.add(d)
    session.flush()
    if failed:
        wake.publish(session, now)
    return list(failed)


@dataclass(frozen=True)
class OutboxStats:
    attempts: list[tuple[str, str, str, int]]  # kind, channel, result, count
    undelivered: list[tuple[str, str, int]]  # channel, status, count
    oldest_undelivered: datetime | None


def outbox_stats(session: Session) -> OutboxStats:
    """Figures for /metrics, read from the rows so every replica reports the same."""
    attempts = session.exec(
        select(Notice.kind, Delivery.channel, DeliveryAttempt.ok, sa.func.count())
        .select_from(DeliveryAttempt)
        .join(Delivery, col(Delivery.id) == DeliveryAttempt.delivery_id)
        .join(Notice, col(Notice.id) == Delivery.notice_id)
        .group_by(col(Notice.kind), col(Delivery.channel), col(DeliveryAttempt.ok))
    ).all()
    undelivered = session.exec(
        select(Delivery.channel, Delivery.status, sa.func.count())
        .where(Delivery.status != DeliveryStatus.SENT)
        .group_by(col(Delivery.channel), col(Delivery.status))
    ).all()
    oldest = session.exec(
        select(sa.func.min(Delivery.created_at)).where(Delivery.status != DeliveryStatus.SENT)
    ).one()
    return OutboxStats(
        [(k, c, "sent" if ok else "error", n) for k, c, ok, n in attempts],
        [(c, s, n) for c, s, n in undelivered],
        _aware(oldest),
    )


def _aware(value: datetime | None) -> datetime | None:
    from datetime import UTC

    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)
