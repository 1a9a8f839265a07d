"""Notices are written with the change that causes them, delivered once, retried with
back-off, and a failed one can be retried by hand."""

from __future__ import annotations

import threading
from datetime import timedelta
from email import message_from_bytes
from email.header import decode_header, make_header

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from monitor.cli import app as cli_app
from monitor.core import wake
from monitor.core.clock import FixedClock
from monitor.core.settings import Settings
from monitor.notifications.models import Delivery, DeliveryAttempt, Notice
from monitor.notifications.sender import claim_next, next_due, send_due
from monitor.scheduler.runner import Runner, run_job
from monitor.sla.service import SlaContext
from tests.conftest import NOW
from tests.helpers import make_ticket
from tests.notifications.conftest import PUBLIC_URL
from tests.notifications.receivers import Receiver, smtp_server

ARRIVAL_AT_RISK = "【即将超时】政务二云 (第二资源池) 重大故障 DX-1 到场"
ARRIVAL_BREACHED = "【超时】政务二云 (第二资源池) 重大故障 DX-1 到场"


def at_risk_ticket(session: Session, ctx: SlaContext) -> int:
    """A major fault reported 25 minutes ago: its 30-minute arrival clock is past 80 %."""
    reported = (NOW - timedelta(minutes=25)).isoformat()
    ticket = make_ticket(session, ctx, [("reported", reported)], external_id="DX-1")
    assert ticket.id is not None
    return ticket.id


def deliveries(engine: Engine) -> list[Delivery]:
    with Session(engine) as s:
        return list(s.exec(select(Delivery).order_by(col(Delivery.id))).all())


def attempts(engine: Engine) -> list[DeliveryAttempt]:
    with Session(engine) as s:
        return list(s.exec(select(DeliveryAttempt).order_by(col(DeliveryAttempt.id))).all())


def test_at_risk_then_breached_each_once(
    engine: Engine,
    session: Session,
    ctx: SlaContext,
    settings: Settings,
    clock: FixedClock,
    receiver: Receiver,
) -> None:
    ticket_id = at_risk_ticket(session, ctx)
    assert send_due(engine, settings, clock).sent == 1
    clock.advance(timedelta(minutes=5, seconds=1))  # the arrival deadline passed 1 s ago
    run_job(engine, settings, clock, "detect_breaches")
    assert send_due(engine, settings, clock).sent == 1
    # A rerun of the sweep, a re-judgement by a later event and another sender pass: nothing.
    run_job(engine, settings, clock, "detect_breaches")
    clock.advance(timedelta(minutes=1))
    from monitor.tickets.models import Ticket
    from tests.helpers import post_event

    post_event(session, ctx, session.get(Ticket, ticket_id), type="comment", at=clock.now())
    assert send_due(engine, settings, clock).sent == 0

    assert receiver.titles() == [ARRIVAL_AT_RISK, ARRIVAL_BREACHED]
    at_risk, breached = (m["message"] for m in receiver.received)
    assert "截止时间：2026-11-28 14:05:00+08:00" in at_risk
    assert "剩余时间：5分" in at_risk
    assert "已超时：1秒" in breached
    assert f"查看：{PUBLIC_URL}/tickets/{ticket_id}" in breached
    assert "资源池：政务二云 (第二资源池)" in breached and "严重程度：重大故障" in breached


def test_a_notice_written_by_another_process_is_sent_by_the_leader_at_once(
    engine: Engine,
    session: Session,
    ctx: SlaContext,
    settings: Settings,
    clock: FixedClock,
    receiver: Receiver,
) -> None:
    """The writer is another process (`serve --workers`, a replica, a CLI command): only the
    database tells the leader, by NOTIFY on PostgreSQL and by the commit itself on SQLite.
    The notice goes out at once, not at the sender's next poll (30 s)."""
    runner = Runner(engine, settings, clock, holder="leader")
    assert runner.renew()
    wake.unsubscribe(runner._on_write)  # (no call within this process reaches the runner)
    passes = threading.Semaphore(0)
    send = runner.sender.run
    runner.sender.run = lambda: (send(), passes.release())[0]  # type: ignore[method-assign]
    runner.scheduler.start(paused=True)
    runner.receiver.start()
    runner.sender.start()
    try:
        assert runner.receiver.listening.wait(10)
        assert passes.acquire(timeout=30)  # its first pass, at start: nothing to send
        passes.acquire(timeout=1)  # and the one the lease's kick asked for, if not the same
        at_risk_ticket(session, ctx)
        assert [m["title"] for m in receiver.wait_for(1, timeout=10)] == [ARRIVAL_AT_RISK]
    finally:
        runner.stop()


def test_a_rolled_back_change_leaves_no_notice(
    engine: Engine, session: Session, ctx: SlaContext
) -> None:
    from monitor.judging.flow import write_flow
    from tests.helpers import ADMIN, make_ticket_in

    reported = (NOW - timedelta(minutes=25)).isoformat()
    with write_flow(session, ctx) as flow:
        flow.create_ticket(make_ticket_in([("reported", reported)]), ADMIN)
    assert session.exec(select(Notice)).all()
    session.rollback()
    assert not session.exec(select(Notice)).all()
    assert not session.exec(select(Delivery)).all()


def test_history_entered_late_pages_nobody(
    engine: Engine, session: Session, ctx: SlaContext, settings: Settings, clock: FixedClock
) -> None:
    make_ticket(
        session,
        ctx,
        [("reported", "2024-08-10T11:41:00+08:00"), ("arrived", "2024-08-10T12:35:00+08:00")],
        external_id="OLD-1",
    )
    # The breaches are recorded (and scored), but a breach two years old is not news.
    from monitor.breaches.models import Breach

    assert session.exec(select(Breach)).all()
    assert not session.exec(select(Notice)).all()
    session.rollback()
    clock.advance(timedelta(days=10))
    run_job(engine, settings, clock, "notify_review_due")
    assert not session.exec(select(Notice)).all()


def test_a_receiver_failing_three_times_gets_the_notice_once_after_back_off(
    engine: Engine,
    session: Session,
    ctx: SlaContext,
    settings: Settings,
    clock: FixedClock,
    receiver: Receiver,
) -> None:
    receiver.script = [500, 503, 500]
    at_risk_ticket(session, ctx)
    for delay in (10, 20, 40):  # seconds: the back-off doubles
        assert send_due(engine, settings, clock).errors == 1
        clock.advance(timedelta(seconds=delay - 1))
        assert len(send_due(engine, settings, clock)) == 0, "retried before its back-off"
        clock.advance(timedelta(seconds=1))
    assert send_due(engine, settings, clock).sent == 1
    assert receiver.titles() == [ARRIVAL_AT_RISK]
    assert receiver.refused == 3
    tries = attempts(engine)
    assert [(a.number, a.ok) for a in tries] == [(1, False), (2, False), (3, False), (4, True)]
    assert "500" in tries[0].error
    [delivery] = deliveries(engine)
    assert (delivery.status, delivery.attempts) == ("sent", 4)


def test_a_notice_a_dead_sender_holds_is_due_when_its_claim_lapses(
    engine: Engine, session: Session, ctx: SlaContext, clock: FixedClock
) -> None:
    """A sender that died while sending holds its delivery until the claim lapses: the next
    sender is told to come back then, not at once (it would find nothing, 20 times a second)."""
    at_risk_ticket(session, ctx)
    with Session(engine) as s:
        assert next_due(s) == clock.now()  # due at once
        claimed = claim_next(s, clock.now(), timedelta(seconds=60))
        assert claimed is not None
        s.commit()  # ... and its sender dies here
    with Session(engine) as s:
        assert next_due(s) == clock.now() + timedelta(seconds=60)


def test_a_receiver_that_never_answers_leaves_a_failed_notice_that_retry_sends(
    engine: Engine,
    session: Session,
    ctx: SlaContext,
    settings: Settings,
    clock: FixedClock,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    receiver.script = [500] * 8
    at_risk_ticket(session, ctx)
    for _ in range(8):
        send_due(engine, settings, clock)
        clock.advance(timedelta(minutes=10))
    [delivery] = deliveries(engine)
    assert (delivery.status, delivery.attempts) == ("failed", 8)
    assert send_due(engine, settings, clock).sent == 0
    assert receiver.received == []

    monkeypatch.setenv("SLAMON_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("SLAMON_CONFIG_DIR", str(settings.config_dir))
    monkeypatch.setenv("SLAMON_NOTIFY_URLS", settings.notify_urls)
    cli = CliRunner()
    listed = cli.invoke(cli_app, ["notifications", "list", "--failed"])
    assert listed.exit_code == 0, listed.output
    assert "即将超时" in listed.output and "发送失败（8 次尝试）" in listed.output
    assert "500" in listed.output

    retried = cli.invoke(cli_app, ["notifications", "retry", str(delivery.notice_id)])
    assert retried.exit_code == 0, retried.output
    assert "已重发" in retried.output
    assert receiver.titles() == [ARRIVAL_AT_RISK]
    assert cli.invoke(cli_app, ["notifications", "list", "--failed"]).output.strip() == (
        "共 0 条通知（有投递失败）"
    )
    assert [a.ok for a in attempts(engine)] == [False] * 8 + [True]
    missing = cli.invoke(cli_app, ["notifications", "retry", "999"])
    assert missing.exit_code == 1 and "999" in missing.output


def test_e_mail_keeps_its_chinese_subject(
    engine: Engine, session: Session, ctx: SlaContext, settings: Settings, clock: FixedClock
) -> None:
    with smtp_server() as (port, messages):
        settings = settings.model_copy(
            update={
                "notify_urls": f"mailto://127.0.0.1:{port}?mode=insecure"
                "&from=sla-monitor@example.gov.cn&to=duty@example.gov.cn"
            }
        )
        ctx.settings = settings
        at_risk_ticket(session, ctx)
        assert send_due(engine, settings, clock).sent == 1
    [raw] = messages
    mail = message_from_bytes(raw)
    assert str(make_header(decode_header(mail["Subject"]))) == ARRIVAL_AT_RISK
    text = next(p for p in mail.walk() if p.get_content_type() == "text/plain")
    body = text.get_payload(decode=True).decode(text.get_content_charset())
    assert "工单：DX-1" in body and "剩余时间：5分" in body


def test_notices_follow_the_routes_by_kind_pool_and_severity(
    engine: Engine,
    session: Session,
    ctx: SlaContext,
    settings: Settings,
    clock: FixedClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SLAMON_NOTIFY_POOL1_DUTY", "json://127.0.0.1:9/pool1")
    monkeypatch.setenv("SLAMON_NOTIFY_POOL2_DUTY", "json://127.0.0.1:9/pool2")
    monkeypatch.setenv("SLAMON_NOTIFY_SUPERVISION", "json://127.0.0.1:9/jianli")
    at_risk_ticket(session, ctx)
    clock.advance(timedelta(minutes=6))
    run_job(engine, settings, clock, "detect_breaches")
    with Session(engine) as s:
        routed = {
            (n.kind, d.channel) for n, d in s.exec(select(Notice, Delivery).join(Delivery)).all()
        }
    assert routed == {
        ("at_risk", "default"),
        ("at_risk", "pool2-duty"),
        ("breached", "default"),
        ("breached", "pool2-duty"),
        ("breached", "supervision"),
    }
    # The admins channel takes major breaches, but its variable is not set: nothing queued.
