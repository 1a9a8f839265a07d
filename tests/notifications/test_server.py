"""Real servers: a notice survives kill -9 between the breach's commit and its delivery, and
two replicas on one PostgreSQL send each notice once."""

from __future__ import annotations

import os
import signal
import subprocess
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine

from tests.conftest import APP_URL, CONFIG, _truncate
from tests.metrics.test_prometheus_e2e import wait_for
from tests.notifications.receivers import Receiver, http_receiver
from tests.test_durability import admin_headers, cli, free_port, start


def server_env(db_url: str, tmp_path: Path, receiver: Receiver) -> dict[str, str]:
    return {
        **os.environ,
        "SLAMON_DATABASE_URL": db_url,
        "SLAMON_CONFIG_DIR": str(CONFIG),
        "SLAMON_EVIDENCE_DIR": str(tmp_path / "evidence"),
        "SLAMON_NOTIFY_URLS": receiver.url,
        # A killed sender's claim on a delivery lapses quickly, so the test need not wait.
        "SLAMON_NOTIFY_CLAIM_SECONDS": "2",
        # A killed leader's lease lapses quickly too, so its successor starts sweeping soon.
        "SLAMON_LEASE_SECONDS": "2",
    }


def about_to_breach(port: int, headers: dict[str, str], ref: str, seconds: float = 3) -> None:
    """A major fault whose 30-minute arrival clock runs out `seconds` from now."""
    reported = datetime.now(UTC) - timedelta(minutes=30) + timedelta(seconds=seconds)
    body = {
        "external_id": ref,
        "pool": "pool2",
        "severity": "major",
        "title": "重要业务系统异常",
        "events": [{"type": "reported", "at": reported.isoformat()}],
    }
    r = httpx.post(f"http://127.0.0.1:{port}/api/v1/tickets", json=body, headers=headers)
    assert r.status_code == 201, r.text


def kinds(receiver: Receiver) -> Counter[tuple[str, str]]:
    out: Counter[tuple[str, str]] = Counter()
    for title in receiver.titles():
        kind, rest = title[1:].split("】", 1)
        out[(kind, rest.split()[-2])] += 1
    return out


def stop(*procs: subprocess.Popen[Any]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        proc.wait(timeout=20)


@pytest.mark.slow
def test_a_breach_notice_survives_kill_9_before_delivery(db_url: str, tmp_path: Path) -> None:
    with http_receiver() as receiver:
        env = server_env(db_url, tmp_path, receiver)
        headers = admin_headers(db_url)
        port = free_port()
        receiver.hold_title = "【超时】"  # the breach notice's first try never gets an answer
        server = start(env, port)
        try:
            about_to_breach(port, headers, "K9-1")
            assert receiver.held.wait(30), "the breach notice was never sent"
            server.send_signal(signal.SIGKILL)  # committed, claimed, not delivered
            server.wait(timeout=10)
            receiver.release.set()
            assert kinds(receiver) == Counter({("即将超时", "K9-1"): 1})
            server = start(env, port)
            # Sent at the takeover, not at the sender's 30-second poll.
            receiver.wait_for(2, timeout=20)
            listed = cli(env, "notifications", "list")
        finally:
            stop(server)
    assert kinds(receiver) == Counter({("即将超时", "K9-1"): 1, ("超时", "K9-1"): 1})
    assert listed.stdout.count("已送达（1 次尝试") == 2, listed.stdout


@pytest.fixture
def pg_url(pg_engine: Engine) -> str:
    _truncate(pg_engine)
    return APP_URL


@pytest.mark.slow
def test_two_replicas_send_each_notice_once(pg_url: str, tmp_path: Path) -> None:
    with http_receiver() as receiver:
        env = server_env(pg_url, tmp_path, receiver)
        headers = admin_headers(pg_url)
        ports = [free_port(), free_port()]
        servers = [start(env, p) for p in ports]
        try:
            for i in range(3):  # written through either replica, whoever leads
                about_to_breach(ports[i % 2], headers, f"R-{i}", seconds=2 + i)
            receiver.wait_for(6, timeout=60)

            def leader() -> int | None:
                for i, p in enumerate(ports):
                    try:
                        ready = httpx.get(f"http://127.0.0.1:{p}/readyz", timeout=5).json()
                    except httpx.HTTPError:  # the one that was killed
                        continue
                    if ready["scheduler"]["leader"]:
                        return i
                return None

            wait_for(lambda: leader() is not None, "a leader")
            first = leader()
            assert first is not None
            servers[first].send_signal(signal.SIGKILL)
            servers[first].wait(timeout=10)
            survivor = 1 - first
            wait_for(lambda: leader() == survivor, "the other replica to take over")
            # The new leader swept and sent what was due at once; a new notice comes next.
            about_to_breach(ports[survivor], headers, "R-after", seconds=300)
            receiver.wait_for(7, timeout=60)
        finally:
            stop(*servers)
    expected = {(k, f"R-{i}"): 1 for i in range(3) for k in ("即将超时", "超时")}
    assert kinds(receiver) == Counter({**expected, ("即将超时", "R-after"): 1})
