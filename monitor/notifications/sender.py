"""Delivering the outbox through Apprise: claim one delivery in a short transaction, send it
with no transaction open, record the attempt in another. Retries back off exponentially."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from monitor.core.clock import Clock
from monitor.core.db import session_scope
from monitor.core.settings import Settings
from monitor.notifications.models import Delivery, DeliveryAttempt, DeliveryStatus, Notice
from monitor.notifications.render import Message, render
from monitor.notifications.routing import Routing, load_routing

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    ok: bool
    error: str = ""


Send = Callable[[str, Message], Outcome]


def send_apprise(url: str, message: Message) -> Outcome:
    """One message to one Apprise address; Apprise's own retries are off (we retry)."""
    import apprise

    sender = apprise.Apprise()
    if not sender.add(url):
        return Outcome(False, "Apprise 地址无效")
    try:
        result = sender.notify(
            body=message.body, title=message.title, body_format=apprise.NotifyFormat.TEXT
        )
    except Exception as exc:  # a plugin bug must not stop the queue
        return Outcome(False, f"{type(exc).__name__}: {exc}"[:2000])
    if result:
        return Outcome(True)
    errors = [e.message for e in result.logs() if e.level in ("WARNING", "ERROR", "CRITICAL")]
    return Outcome(False, ("; ".join(errors) or f"Apprise: {result.status.name}")[:2000])


def claim_next(
    session: Session, now: datetime, hold: timedelta, notice_id: int | None = None
) -> Delivery | None:
    """Take the next due delivery for `hold`; SKIP LOCKED lets two senders never take one."""
    query = select(Delivery).where(
        Delivery.status == DeliveryStatus.PENDING,
        col(Delivery.next_attempt_at) <= now,
        sa.or_(col(Delivery.claimed_until).is_(None), col(Delivery.claimed_until) < now),
    )
    if notice_id is not None:
        query = query.where(Delivery.notice_id == notice_id)
    query = (
        query.order_by(col(Delivery.next_attempt_at), col(Delivery.id))
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    delivery = session.exec(query).first()
    if delivery is not None:
        delivery.claimed_until = now + hold
        session.add(delivery)
    return delivery


def record(
    session: Session,
    delivery_id: int,
    outcome: Outcome,
    started: datetime,
    now: datetime,
    routing: Routing,
) -> Delivery:
    """Keep the attempt, and mark the delivery sent, due again later, or failed."""
    delivery = session.exec(
        select(Delivery).where(Delivery.id == delivery_id).with_for_update()
    ).one()
    number = (
        1
        + session.exec(
            select(sa.func.count()).where(DeliveryAttempt.delivery_id == delivery_id)
        ).one()
    )
    session.add(
        DeliveryAttempt(
            delivery_id=delivery_id,
            number=number,
            started_at=started,
            finished_at=now,
            ok=outcome.ok,
            error=outcome.error,
        )
    )
    delivery.attempts += 1
    delivery.claimed_until = None
    if outcome.ok:
        delivery.status, delivery.sent_at, delivery.next_attempt_at = DeliveryStatus.SENT, now, None
        delivery.last_error = ""
    else:
        delivery.last_error = outcome.error
        if delivery.attempts >= routing.file.retry.attempts:
            delivery.status, delivery.next_attempt_at = DeliveryStatus.FAILED, None
            log.error("notice delivery %s failed for good: %s", delivery_id, outcome.error)
        else:
            delivery.next_attempt_at = now + routing.file.retry.delay(delivery.attempts)
    session.add(delivery)
    return delivery


@dataclass
class SendReport:
    sent: int = 0
    errors: int = 0
    next_due: datetime | None = None

    def __len__(self) -> int:
        return self.sent + self.errors


def send_due(
    engine: Engine,
    settings: Settings,
    clock: Clock,
    *,
    send: Send = send_apprise,
    limit: int = 200,
    notice_id: int | None = None,
) -> SendReport:
    """Deliver what is due now, one at a time; runnable by hand (`notifications retry`)."""
    routing = load_routing(settings.config_dir, settings.notify_urls)
    hold = timedelta(seconds=settings.notify_claim_seconds)
    report = SendReport()
    for _ in range(limit):
        started = clock.now()
        with session_scope(engine) as session:
            delivery = claim_next(session, started, hold, notice_id)
            if delivery is None:
                break
            notice = session.get(Notice, delivery.notice_id)
            assert notice is not None and delivery.id is not None
            delivery_id, channel, key = delivery.id, delivery.channel, delivery.endpoint
            message = render(notice, started, settings.tz, settings.public_url)
        target = routing.find(channel, key)
        if target is None:
            outcome = Outcome(False, f"渠道 {channel} 的这个地址已不在配置中")
        else:
            outcome = send(target.url, message)
        with session_scope(engine) as session:
            record(session, delivery_id, outcome, started, clock.now(), routing)
        if outcome.ok:
            report.sent += 1
        else:
            report.errors += 1
    with Session(engine) as session:
        report.next_due = next_due(session)
        session.commit()  # a read: COMMIT keeps the driver's prepared statements (db.read_scope)
    return report


def next_due(session: Session) -> datetime | None:
    """When a sender can next take a pending delivery, or None: its next attempt, or, while
    a sender holds it (one that died holds it until its claim lapses), the claim's end. (A
    sender woken for a held delivery only finds nothing to take, over and over.)"""
    free_at = sa.case(
        (col(Delivery.claimed_until) > col(Delivery.next_attempt_at), col(Delivery.claimed_until)),
        else_=col(Delivery.next_attempt_at),
    )
    due = session.exec(
        select(sa.func.min(free_at)).where(Delivery.status == DeliveryStatus.PENDING)
    ).one()
    return None if due is None else _aware(due)


class Worker:
    """The lease holder's sender thread: wakes when a notice is written, when a retry is
    due, and every `poll` seconds as a safety net."""

    def __init__(
        self,
        run: Callable[[], SendReport],
        is_leader: Callable[[], bool],
        clock: Clock,
        *,
        poll: float = 30.0,
    ) -> None:
        self.run, self.is_leader, self.clock, self.poll = run, is_leader, clock, poll
        self._kick = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def kick(self) -> None:
        self._kick.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="slamon-notify", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._kick.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        # Apprise loads its plugins on first use (about 2 s): not while a breach waits.
        import apprise

        apprise.Apprise.instantiate("json://localhost")
        while not self._stop.is_set():
            wait = self.poll
            if self.is_leader():
                try:
                    report = self.run()
                    if report.next_due is not None:
                        due = report.next_due - self.clock.now()  # (aware)
                        wait = min(wait, max(0.05, due.total_seconds()))
                except Exception:
                    log.exception("sending notices failed; trying again shortly")
                    wait = min(wait, 5.0)
            self._kick.wait(wait)
            self._kick.clear()


def _aware(value: datetime) -> datetime:
    from datetime import UTC

    return value if value.tzinfo else value.replace(tzinfo=UTC)
