"""/metrics is exposed deliberately: open on loopback, closed beyond it unless a token is set,
and it names no host or process."""

from __future__ import annotations

import os
import socket

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from monitor.api.app import create_app
from monitor.core.clock import FixedClock, SystemClock
from monitor.core.settings import Settings
from monitor.scheduler.runner import Runner


def test_beyond_loopback_metrics_need_the_token(
    settings: Settings, engine: Engine, clock: FixedClock
) -> None:
    closed = create_app(settings, clock=clock, engine=engine, metrics_open=False)
    with TestClient(closed) as client:
        r = client.get("/metrics")
        assert r.status_code == 403 and "SLAMON_METRICS_TOKEN" in r.text
    guarded = create_app(
        settings.model_copy(update={"metrics_token": "s3cret"}),
        clock=clock,
        engine=engine,
        metrics_open=False,
    )
    with TestClient(guarded) as client:
        assert client.get("/metrics").status_code == 401
        ok = client.get("/metrics", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and "slamon_tickets_open" in ok.text


def test_the_scheduler_is_named_without_its_host_or_process(
    settings: Settings, engine: Engine, clock: FixedClock
) -> None:
    runner = Runner(engine, settings, SystemClock())  # the collector reads the lease in real time
    assert runner.renew()
    app = create_app(settings, clock=clock, engine=engine)
    with TestClient(app) as client:
        text = client.get("/metrics").text
        ready = client.get("/readyz").text
    runner.stop()
    leader = next(line for line in text.splitlines() if line.startswith("slamon_scheduler_leader{"))
    assert runner.holder in leader
    for secret in (socket.gethostname(), f":{os.getpid()}:"):
        assert secret not in leader and secret not in ready
