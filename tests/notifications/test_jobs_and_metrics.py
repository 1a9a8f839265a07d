"""The periodic notices (review overdue, next year's calendar) and what /metrics says of the
outbox."""

from __future__ import annotations

from datetime import timedelta

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from monitor.core.clock import FixedClock
from monitor.core.settings import Settings
from monitor.metrics.collector import make_registry
from monitor.notifications.models import Notice
from monitor.notifications.sender import send_due
from monitor.scheduler.runner import run_job
from monitor.sla.service import SlaContext
from tests.conftest import NOW
from tests.helpers import make_ticket
from tests.notifications.receivers import Receiver


def test_a_breach_left_unreviewed_reaches_the_supervision_unit_once(
    engine: Engine,
    session: Session,
    ctx: SlaContext,
    settings: Settings,
    clock: FixedClock,
    receiver: Receiver,
) -> None:
    reported = (NOW - timedelta(minutes=40)).isoformat()
    make_ticket(session, ctx, [("reported", reported)], external_id="DX-7")
    session.rollback()
    clock.advance(timedelta(hours=71))
    assert run_job(engine, settings, clock, "notify_review_due") == 0
    clock.advance(timedelta(hours=1))
    assert run_job(engine, settings, clock, "notify_review_due") == 1
    assert run_job(engine, settings, clock, "notify_review_due") == 0
    send_due(engine, settings, clock)
    review = [m for m in receiver.received if m["title"].startswith("【超时待复核】")]
    assert [m["title"] for m in review] == [
        "【超时待复核】政务二云 (第二资源池) 重大故障 DX-7 到场"
    ]
    assert "已等待 3天" in review[0]["message"]


def test_next_years_calendar_missing_is_told_to_the_admins_once(
    engine: Engine,
    settings: Settings,
    clock: FixedClock,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SLAMON_NOTIFY_ADMINS", receiver.url.replace("/notify", "/admins"))
    run_job(engine, settings, clock, "refresh_findings")  # 28 November: 2027 is not loaded
    clock.advance(timedelta(days=1))
    run_job(engine, settings, clock, "refresh_findings")
    send_due(engine, settings, clock)
    titles = receiver.titles()
    # Once to every-notice (SLAMON_NOTIFY_URLS) and once to the admins' channel.
    assert titles == ["【次年日历未载入】2027 年工作日历尚未载入"] * 2
    assert "sla-monitor calendar load" in receiver.received[0]["message"]


def samples(engine: Engine, settings: Settings) -> dict[tuple[str, tuple[str, ...]], float]:
    text = generate_latest(make_registry(engine, settings)).decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name.startswith("slamon_notifications"):
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value  # type: ignore[arg-type]
    return out


def test_metrics_count_attempts_and_show_what_waits(
    engine: Engine,
    session: Session,
    ctx: SlaContext,
    settings: Settings,
    clock: FixedClock,
    receiver: Receiver,
) -> None:
    receiver.script = [500]
    reported = (NOW - timedelta(minutes=25)).isoformat()
    make_ticket(session, ctx, [("reported", reported)], external_id="DX-8")
    session.rollback()
    send_due(engine, settings, clock)
    waiting = samples(engine, settings)
    pending = ("slamon_notifications_outbox", (("channel", "default"), ("status", "pending")))
    assert waiting[pending] == 1
    error = (
        "slamon_notifications_total",
        (("channel", "default"), ("kind", "at_risk"), ("result", "error")),
    )
    assert waiting[error] == 1
    # The notice was written at the test clock's NOW, well in the past of the real clock.
    assert waiting[("slamon_notifications_oldest_undelivered_age_seconds", ())] > 0
    clock.advance(timedelta(seconds=10))
    send_due(engine, settings, clock)
    done = samples(engine, settings)
    assert pending not in done
    assert done[("slamon_notifications_oldest_undelivered_age_seconds", ())] == 0
    sent = ("slamon_notifications_total", (*error[1][:2], ("result", "sent")))
    assert done[sent] == 1 and done[error] == 1
    assert session.exec(select(Notice)).one().kind == "at_risk"
