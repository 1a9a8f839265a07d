"""A write answered 2xx survives kill -9 of the server: a real server process, killed mid-stream."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from bench.replicas import admin_token
from monitor.core.db import make_engine
from tests.conftest import CONFIG


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        env=env,
        text=True,
        capture_output=True,
        timeout=120,
        check=False,
    )


def start(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("the server did not start")


def admin_headers(db_url: str) -> dict[str, str]:
    engine = make_engine(db_url)
    try:
        return {"Authorization": f"Bearer {admin_token(engine)}"}
    finally:
        engine.dispose()


@pytest.mark.slow
def test_acknowledged_tickets_survive_kill_9(db_url: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "SLAMON_DATABASE_URL": db_url,
        "SLAMON_CONFIG_DIR": str(CONFIG),
        "SLAMON_EVIDENCE_DIR": str(tmp_path / "evidence"),
    }
    headers = admin_headers(db_url)
    port = free_port()
    server = start(env, port)
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def writer(n: int) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            i = 0
            while not stop.is_set():
                ref = f"K{n}-{i:05d}"
                i += 1
                body = {
                    "external_id": ref,
                    "pool": "pool1",
                    "severity": "general",
                    "title": "kill -9",
                    "events": [{"type": "reported", "at": "2026-11-01T09:00:00+08:00"}],
                }
                try:
                    r = client.post("/api/v1/tickets", json=body, headers=headers)
                except httpx.HTTPError:
                    return
                if r.status_code == 201:
                    with lock:
                        acknowledged.append(ref)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    deadline = time.time() + 30
    while len(acknowledged) < 60 and time.time() < deadline:
        time.sleep(0.05)
    server.send_signal(signal.SIGKILL)
    server.wait(timeout=10)
    stop.set()
    for t in threads:
        t.join(timeout=10)
    assert len(acknowledged) >= 60

    server = start(env, port)
    try:
        stored: list[str] = []
        page = 1
        while True:
            r = httpx.get(
                f"http://127.0.0.1:{port}/api/v1/tickets",
                headers=headers,
                params={"per_page": 500, "page": page},
                timeout=10,
            ).json()
            stored += [t["external_id"] for t in r["items"]]
            if len(stored) >= r["total"]:
                break
            page += 1
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=20)
    assert not set(acknowledged) - set(stored), "acknowledged tickets were lost"
    assert len(stored) == len(set(stored))
    verified = cli(env, "audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
