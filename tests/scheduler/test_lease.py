"""Two schedulers on one database: one leader, a takeover after expiry, no double breach."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from monitor.breaches.models import Breach
from monitor.core.clock import FixedClock
from monitor.core.db import session_scope
from monitor.core.settings import Settings
from monitor.scheduler.lease import acquire, holder_of
from monitor.scheduler.models import JobRun
from monitor.scheduler.runner import Runner
from monitor.sla.service import SlaContext
from tests.conftest import NOW
from tests.helpers import make_ticket

TTL = timedelta(seconds=15)


def test_one_leader_and_a_takeover_after_expiry(engine: Engine) -> None:
    with session_scope(engine) as s:
        assert acquire(s, "scheduler", "a", NOW, TTL)
    with session_scope(engine) as s:
        assert not acquire(s, "scheduler", "b", NOW + timedelta(seconds=5), TTL)
        assert acquire(s, "scheduler", "a", NOW + timedelta(seconds=5), TTL)  # renew
    with session_scope(engine) as s:
        assert not acquire(s, "scheduler", "b", NOW + timedelta(seconds=19), TTL)
        assert acquire(s, "scheduler", "b", NOW + timedelta(seconds=21), TTL)
        assert holder_of(s, "scheduler", NOW + timedelta(seconds=21)) == "b"
    with session_scope(engine) as s:
        assert not acquire(s, "scheduler", "a", NOW + timedelta(seconds=22), TTL)


def test_concurrent_acquires_elect_exactly_one(engine: Engine) -> None:
    results: dict[str, bool] = {}
    barrier = threading.Barrier(4)

    def contend(name: str) -> None:
        barrier.wait()
        with session_scope(engine) as s:
            results[name] = acquire(s, "scheduler", name, NOW, TTL)

    threads = [threading.Thread(target=contend, args=(f"p{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(results.values()) == 1


def test_two_runners_record_each_breach_once(
    engine: Engine, session: Session, ctx: SlaContext, settings: Settings, clock: FixedClock
) -> None:
    make_ticket(session, ctx, [("reported", (NOW - timedelta(minutes=29)).isoformat())])
    a = Runner(engine, settings, clock, holder="a", lease_ttl=TTL)
    b = Runner(engine, settings, clock, holder="b", lease_ttl=TTL)
    try:
        assert a.renew() and not b.renew()
        clock.at = NOW + timedelta(minutes=2)
        assert b.sweep() == 0  # not the leader: does nothing
        assert a.sweep() == 1
        # a dies; after expiry b takes over and its takeover sweep finds nothing new.
        clock.at = NOW + timedelta(minutes=3)
        assert b.renew() and b.is_leader
        assert b.sweep() == 0
    finally:
        a.scheduler.remove_all_jobs()
        b.scheduler.remove_all_jobs()
    with Session(engine) as s:
        assert [x.target for x in s.exec(select(Breach)).all()] == ["arrival"]
        assert s.get(JobRun, "detect_breaches") is not None


def test_the_runner_arms_its_wake_at_the_next_instant_and_rearms_earlier(
    engine: Engine, session: Session, ctx: SlaContext, settings: Settings, clock: FixedClock
) -> None:
    runner = Runner(engine, settings, clock, holder="a", lease_ttl=TTL)
    make_ticket(session, ctx, [("reported", NOW.isoformat())], severity="anomaly", external_id="A")
    assert runner.renew()
    assert runner.armed_at == NOW + timedelta(hours=24) * 0.8
    runner.rearm(NOW + timedelta(hours=30))  # later: ignored
    assert runner.armed_at == NOW + timedelta(hours=24) * 0.8
    runner.rearm(NOW + timedelta(minutes=24))
    assert runner.armed_at == NOW + timedelta(minutes=24)
    assert runner.scheduler.get_job("breach_wake") is not None
    runner.scheduler.remove_all_jobs()
