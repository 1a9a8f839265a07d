"""The running metric totals always equal what the rows say, through every kind of write."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from monitor.breaches.models import Breach
from monitor.core.clock import FixedClock
from monitor.core.db import session_scope
from monitor.core.errors import InvalidInput
from monitor.core.settings import Settings
from monitor.demo.data import load_demo
from monitor.judging.flow import write_flow
from monitor.metrics.jobs import reconcile_metrics
from monitor.metrics.totals import computed, reconcile, snapshot_drift, stored
from monitor.scheduler.runner import run_job
from monitor.sla.service import SlaContext
from tests.conftest import NOW
from tests.helpers import detect, make_ticket, post_event, review


def assert_in_step(session: Session) -> None:
    session.commit()
    have, truth = stored(session), computed(session)
    assert have.keys() == truth.keys()
    for key, (count, total) in truth.items():
        assert have[key][0] == count, key
        assert have[key][1] == pytest.approx(total), key
    session.rollback()


def test_totals_follow_events_corrections_severity_reviews_and_sweeps(
    session: Session, ctx: SlaContext, clock: FixedClock
) -> None:
    ticket = make_ticket(
        session,
        ctx,
        [
            {"id": "r", "type": "reported", "at": "2026-11-28T13:00:00+08:00"},
            {"id": "a", "type": "arrived", "at": "2026-11-28T13:50:00+08:00"},
        ],
    )
    assert_in_step(session)
    post_event(
        session,
        ctx,
        ticket,
        type="correction",
        corrects="a",
        at="2026-11-28T13:20:00+08:00",
        reason="签到单",
    )
    assert_in_step(session)
    post_event(
        session,
        ctx,
        ticket,
        type="severity_changed",
        severity="general",
        at="2026-11-28T13:30:00+08:00",
    )
    assert_in_step(session)
    post_event(session, ctx, ticket, type="resolved", at="2026-11-28T13:55:00+08:00")
    assert_in_step(session)
    other = make_ticket(session, ctx, [("reported", "2026-11-28T13:40:00+08:00")], external_id="B")
    clock.at = NOW + timedelta(hours=2)
    detect(session, ctx)
    assert_in_step(session)
    breach = session.exec(select(Breach).where(Breach.ticket_id == other.id)).first()
    assert breach is not None
    review(session, ctx, breach, "waived", "计划停机", "监理")
    assert_in_step(session)
    review(session, ctx, breach, "confirmed", "", "监理")
    assert_in_step(session)


def test_a_refused_write_leaves_the_totals_alone(session: Session, ctx: SlaContext) -> None:
    ticket = make_ticket(session, ctx, [("reported", "2026-11-28T13:00:00+08:00")])
    before = stored(session)
    session.rollback()
    with pytest.raises(InvalidInput):
        post_event(session, ctx, ticket, type="arrived", at="2026-11-28T12:00:00+08:00")
    session.rollback()
    assert stored(session) == before
    assert_in_step(session)


def test_the_demo_year_and_reconcile(session: Session, ctx: SlaContext) -> None:
    demo(session, ctx)
    assert_in_step(session)
    assert reconcile(session) == 0
    session.commit()
    assert_in_step(session)


def demo(session: Session, ctx: SlaContext) -> int:
    with write_flow(session, ctx) as flow:
        return load_demo(flow)


def spoil_two_totals(engine: Engine) -> None:
    """Drift, as a bug would leave it: one total counts 5 too many, another is gone."""
    with session_scope(engine) as session:
        first, second = sorted(stored(session))[:2]
        connection = session.connection()
        connection.exec_driver_sql(
            "UPDATE metric_totals SET count = count + 5 WHERE family = %s AND labels = %s"
            if engine.dialect.name == "postgresql"
            else "UPDATE metric_totals SET count = count + 5 WHERE family = ? AND labels = ?",
            first,
        )
        connection.exec_driver_sql(
            "DELETE FROM metric_totals WHERE family = %s AND labels = %s"
            if engine.dialect.name == "postgresql"
            else "DELETE FROM metric_totals WHERE family = ? AND labels = ?",
            second,
        )


def test_the_daily_job_corrects_drift_and_keeps_what_was_written_while_it_read(
    engine: Engine, session: Session, ctx: SlaContext, settings: Settings, clock: FixedClock
) -> None:
    demo(session, ctx)
    session.commit()
    spoil_two_totals(engine)
    found = snapshot_drift(engine)  # (the job's read, before its write transaction)
    assert found.wrong == 2
    # A ticket written between the job's read and its correction counts itself.
    make_ticket(session, ctx, [("reported", "2026-11-28T13:40:00+08:00")], external_id="LATE")
    with write_flow(session, ctx) as flow:
        assert reconcile_metrics(flow, found) == 2
    session.commit()
    assert_in_step(session)
    assert run_job(engine, settings, clock, "reconcile_metrics") == 0
    assert_in_step(session)


def test_the_daily_jobs_read_waits_for_no_writer(
    engine: Engine, session: Session, ctx: SlaContext
) -> None:
    """Its whole-table reads take no write lock: a writer in the middle of a transaction
    (here one that will spoil two totals) neither holds it up nor shows it an uncommitted
    change."""
    make_ticket(session, ctx, [("reported", "2026-11-28T13:00:00+08:00")])
    session.close()
    writer = engine.connect()
    try:
        transaction = writer.begin()  # (on SQLite: the write lock, held)
        writer.exec_driver_sql("UPDATE metric_totals SET count = count + 5")
        done: list[int] = []
        reader = threading.Thread(target=lambda: done.append(snapshot_drift(engine).wrong))
        reader.start()
        reader.join(timeout=10)
        assert done == [0]  # read at once, and the writer's change not in it
        transaction.rollback()
    finally:
        writer.close()
