"""End to end: Prometheus scrapes the real server, a clock runs out, SlaBreachDetected fires,
and Alertmanager routes it by pool and severity (dashboards/alertmanager.yml) to webhook
receivers on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import CONFIG
from tests.metrics.test_prometheus_e2e import wait_for
from tests.metrics.tools import DASHBOARDS, tool
from tests.notifications.receivers import http_receiver
from tests.notifications.test_server import about_to_breach
from tests.test_durability import admin_headers, free_port, start


def test_the_shipped_alertmanager_config_is_valid() -> None:
    checked = subprocess.run(
        [tool("amtool", "prometheus-alertmanager"), "check-config", "alertmanager.yml"],
        cwd=DASHBOARDS,
        text=True,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def on_loopback(config: dict[str, Any], port: int) -> dict[str, Any]:
    """The shipped routing tree, each receiver replaced by a webhook at /<receiver name>,
    and the waits shortened so the test does not sit through them."""
    config["receivers"] = [
        {"name": r["name"], "webhook_configs": [{"url": f"http://127.0.0.1:{port}/{r['name']}"}]}
        for r in config["receivers"]
    ]
    config["route"].update(group_wait="1s", group_interval="1s")
    return config


@pytest.mark.slow
def test_a_breach_alert_reaches_the_pools_duty_and_the_supervision_unit(
    db_url: str, tmp_path: Path
) -> None:
    prometheus = tool("prometheus")
    alertmanager = tool("prometheus-alertmanager", "prometheus-alertmanager")
    env = {
        **os.environ,
        "SLAMON_DATABASE_URL": db_url,
        "SLAMON_CONFIG_DIR": str(CONFIG),
        "SLAMON_EVIDENCE_DIR": str(tmp_path / "evidence"),
    }
    port, prom_port, am_port = free_port(), free_port(), free_port()
    procs: list[subprocess.Popen[bytes]] = []
    with http_receiver() as receiver:
        shipped = yaml.safe_load((DASHBOARDS / "alertmanager.yml").read_text(encoding="utf-8"))
        (tmp_path / "alertmanager.yml").write_text(
            yaml.safe_dump(on_loopback(shipped, receiver.port)), encoding="utf-8"
        )
        (tmp_path / "alerts.yml").write_text(
            (DASHBOARDS / "alerts.yml").read_text(encoding="utf-8"), encoding="utf-8"
        )
        (tmp_path / "prometheus.yml").write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "rule_files: [alerts.yml]\n"
            "alerting: {alertmanagers: [{static_configs: [{targets: ["
            f"'127.0.0.1:{am_port}']}}]}}]}}\n"
            "scrape_configs:\n"
            f"  - job_name: sla-monitor\n    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n",
            encoding="utf-8",
        )
        try:
            # Prometheus first: it takes up a new target only some 5 s after it starts (its
            # scrape manager's reload interval), time the server's start fills.
            procs.append(
                subprocess.Popen(
                    [
                        alertmanager,
                        f"--config.file={tmp_path / 'alertmanager.yml'}",
                        f"--storage.path={tmp_path / 'am-data'}",
                        f"--web.listen-address=127.0.0.1:{am_port}",
                        "--cluster.listen-address=",
                        "--log.level=warn",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            procs.append(
                subprocess.Popen(
                    [
                        prometheus,
                        f"--config.file={tmp_path / 'prometheus.yml'}",
                        f"--storage.tsdb.path={tmp_path / 'prom-data'}",
                        f"--web.listen-address=127.0.0.1:{prom_port}",
                        "--log.level=warn",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            headers = admin_headers(db_url)
            procs.append(start(env, port))

            # Scraped at 0 before the deadline, so the breach is an increase Prometheus sees:
            # the ticket is written once Prometheus has scraped the server (every pool's
            # target is exported at 0 from the start), and its clock runs out 2 s later (on a
            # loaded machine, Prometheus's start took longer than a clock of 8 s posted at
            # once, and the first sample was already 1).
            def scraped() -> bool:
                up = httpx.get(
                    f"http://127.0.0.1:{prom_port}/api/v1/query",
                    params={"query": 'up{job="sla-monitor"}'},
                    timeout=5,
                ).json()["data"]["result"]
                return bool(up) and up[0]["value"][1] == "1"

            wait_for(scraped, "Prometheus's first scrape of the server", seconds=60)
            about_to_breach(port, headers, "AM-1", seconds=2)

            def breach_alerts() -> dict[str, dict[str, str]]:
                found = {}
                for path, body in zip(receiver.paths, receiver.received, strict=True):
                    for alert in body.get("alerts", []):
                        if alert["labels"]["alertname"] == "SlaBreachDetected":
                            found[path] = alert["labels"]
                return found if {"/pool2-duty", "/supervision"} <= set(found) else {}

            routed = wait_for(breach_alerts, "the breach alert at both receivers", seconds=90)
        finally:
            for proc in reversed(procs):
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                proc.wait(timeout=20)
    assert routed["/pool2-duty"] == {
        "alertname": "SlaBreachDetected",
        "severity": "critical",
        "pool": "pool2",
        "fault_severity": "major",
        "target": "arrival",
    }
    breaches_to = {
        p
        for p, b in zip(receiver.paths, receiver.received, strict=True)
        if any(a["labels"]["alertname"] == "SlaBreachDetected" for a in b["alerts"])
    }
    assert breaches_to == {"/pool2-duty", "/supervision"}  # not pool1's duty, not the admins
