"""End to end: a real Prometheus scrapes the real server holding the demo year; every
dashboard and rule query runs, and the overview's panels return series."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import CONFIG
from tests.metrics.tools import DASHBOARDS, concrete, dashboard_exprs, rule_exprs, tool
from tests.test_durability import free_port


def wait_for(check: Any, what: str, seconds: float = 60) -> Any:
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            result = check()
            if result:
                return result
        except (httpx.HTTPError, ValueError):  # not up yet, or not answering JSON yet
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_prometheus_scrapes_the_demo_and_every_query_runs(db_url: str, tmp_path: Path) -> None:
    prometheus = tool("prometheus")
    env = {
        **os.environ,
        "SLAMON_DATABASE_URL": db_url,
        "SLAMON_CONFIG_DIR": str(CONFIG),
        "SLAMON_EVIDENCE_DIR": str(tmp_path / "evidence"),
    }
    port, prom_port = free_port(), free_port()
    shutil.copy(DASHBOARDS / "alerts.yml", tmp_path / "alerts.yml")
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "rule_files: [alerts.yml]\n"
        "scrape_configs:\n"
        f"  - job_name: sla-monitor\n    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n",
        encoding="utf-8",
    )
    # Prometheus first: it takes up a new target only some 5 s after it starts (its scrape
    # manager's reload interval), time the loading of the demo year fills.
    prom = subprocess.Popen(
        [
            prometheus,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{prom_port}/api/v1"
    try:
        server = start_with_demo(env, port)
    except BaseException:
        prom.send_signal(signal.SIGTERM)
        prom.wait(timeout=20)
        raise
    try:

        def run(expr: str) -> dict[str, Any]:
            data: dict[str, Any] = httpx.get(
                f"{base}/query", params={"query": expr}, timeout=10
            ).json()
            return data

        # Range functions need at least two samples: wait until Prometheus has them (up is 1
        # for a scrape that succeeded; the first may have come before the server was up).
        wait_for(
            lambda: run('sum_over_time(up{job="sla-monitor"}[5m]) >= 2')["data"]["result"],
            "two successful scrapes",
        )
        failures = []
        for board, exprs in dashboard_exprs().items():
            for expr in exprs:
                answer = run(concrete(expr))
                if answer.get("status") != "success":
                    failures.append(f"{board}: {expr}: {answer.get('error')}")
                elif board == "sla-overview.json" and not answer["data"]["result"]:
                    failures.append(f"{board}: no series for {expr}")
        for expr in rule_exprs():
            answer = run(expr)
            if answer.get("status") != "success":
                failures.append(f"alerts.yml: {expr}: {answer.get('error')}")
        assert not failures, "\n".join(failures)
        rules = wait_for(
            lambda: [
                r
                for g in httpx.get(f"{base}/rules", timeout=10).json()["data"]["groups"]
                for r in g["rules"]
                if r.get("lastEvaluation", "").startswith("2")
            ],
            "rule evaluation",
        )
        assert len(rules) == len(rule_exprs())
        assert all(r["health"] == "ok" for r in rules), rules
    finally:
        prom.send_signal(signal.SIGTERM)
        server.send_signal(signal.SIGTERM)
        prom.wait(timeout=20)
        server.wait(timeout=20)


def start_with_demo(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    """The server with the demo year; loading it takes a few seconds before /healthz answers."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor", "serve", "--demo", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for(
        lambda: httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200,
        "the server with the demo year",
        seconds=120,
    )
    return proc
