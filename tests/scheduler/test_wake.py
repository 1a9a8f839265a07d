"""A write that brings the next deadline earlier re-arms the leader, in its own process and
when the write happens in another process: on PostgreSQL through NOTIFY, on SQLite because
the leader sees that another connection committed to the file."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from monitor.core import wake
from monitor.core.clock import FixedClock
from monitor.core.db import make_engine
from monitor.core.settings import Settings
from monitor.scheduler.runner import RETRY_AFTER_FAILURE, Runner
from monitor.sla.service import SlaContext
from tests.conftest import NOW
from tests.helpers import make_ticket


def test_a_write_elsewhere_rearms_the_leader(
    engine: Engine, session: Session, ctx: SlaContext, settings: Settings, clock: FixedClock
) -> None:
    make_ticket(session, ctx, [("reported", NOW.isoformat())], severity="anomaly", external_id="A")
    runner = Runner(engine, settings, clock, holder="leader")
    assert runner.renew()
    assert runner.armed_at == NOW + timedelta(hours=24) * 0.8
    # Only the database connects this runner to the writer below: another process.
    wake.unsubscribe(runner._on_write)
    runner.scheduler.start(paused=True)
    runner.receiver.start()
    try:
        assert runner.receiver.listening.wait(10)
        runner.rearmed.clear()
        make_ticket(session, ctx, [("reported", NOW.isoformat())], external_id="B")
        assert runner.rearmed.wait(10)
        assert runner.armed_at == NOW + timedelta(minutes=24)
        assert runner.scheduler.get_job("breach_wake") is not None
    finally:
        wake.unsubscribe(runner._on_write)
        runner.receiver.stop()
        runner.scheduler.shutdown(wait=False)


def test_a_failed_sweep_leaves_later_deadlines_armed(
    engine: Engine,
    session: Session,
    ctx: SlaContext,
    settings: Settings,
    clock: FixedClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A wake whose sweep fails (the database away for a moment) must not keep its instant
    as the one armed: a deadline written afterwards, later than it, was then ignored until
    the safety sweep, a minute without detection."""
    from monitor.scheduler import runner as runner_module

    make_ticket(session, ctx, [("reported", NOW.isoformat())], external_id="A")
    runner = Runner(engine, settings, clock, holder="leader")
    assert runner.renew()  # takes the lease and sweeps at once, arming the first deadline
    armed = runner.armed_at
    assert armed == NOW + timedelta(minutes=24)
    runner.scheduler.start(paused=True)
    try:

        def fails(*_: Any, **__: Any) -> Any:
            raise RuntimeError("the database went away")

        monkeypatch.setattr(runner_module, "run_job", fails)
        clock.at = armed  # the wake comes due, and its sweep fails
        assert runner.sweep() == 0
        later = armed + timedelta(minutes=5)
        runner.rearm(later)  # a write's new deadline, after the failed wake's instant
        assert runner.armed_at == later
        assert runner.scheduler.get_job("breach_wake") is not None
        # The failed wake's own instant, re-armed at once (as every commit seen on SQLite
        # would), runs again only once the retry pause has passed, not in a loop.
        runner.rearm(armed)
        job = runner.scheduler.get_job("breach_wake")
        assert job is not None and job.next_run_time == armed + RETRY_AFTER_FAILURE
    finally:
        runner.scheduler.shutdown(wait=False)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_scheduler_starts_while_another_writer_holds_the_database(
    settings: Settings, clock: FixedClock, db_url: str
) -> None:
    """An import holds SQLite's write lock for its whole length. A server (or a worker that
    `serve --workers` replaces) starting meanwhile must still start: before, loading the
    rules at the scheduler's start waited the busy timeout and failed the start, and the
    supervisor then stopped every worker."""
    engine = make_engine(db_url, busy_seconds=0.3)
    writer = sqlite3.connect(db_url.removeprefix("sqlite:///"), isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    runner = Runner(engine, settings, clock, holder="starting")
    try:
        runner.start()
        assert runner.scheduler.running
    finally:
        writer.execute("ROLLBACK")
        writer.close()
        runner.stop()
        engine.dispose()
