"""/metrics: the contract's names, values read from the database, and promtool's approval."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlmodel import Session

from monitor.metrics.names import METRICS, exported_series_names
from tests.helpers import ticket_body
from tests.metrics.tools import tool

API = "/api/v1"


def scrape(client: TestClient) -> dict[str, Any]:
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    return {f.name: f for f in text_string_to_metric_families(r.text)}


def samples(families: dict[str, Any], name: str) -> dict[tuple[tuple[str, str], ...], float]:
    base = name.removesuffix("_total").removesuffix("_bucket")
    family = families[base]
    return {tuple(sorted(s.labels.items())): s.value for s in family.samples if s.name == name}


def test_every_declared_metric_is_exported_with_its_labels(client: TestClient, auth: Any) -> None:
    client.post(f"{API}/tickets", json=ticket_body(), headers=auth["op2"])
    families = scrape(client)
    for name, (kind, _, labels) in METRICS.items():
        family = families[name.removesuffix("_total") if kind == "counter" else name]
        assert family.type == kind, name
        for sample in family.samples:
            assert set(sample.labels) - {"le"} == set(labels), (name, sample.labels)
            assert not {"ticket", "id", "external_id"} & set(sample.labels)


def test_figures_come_from_the_database(client: TestClient, auth: Any, session: Session) -> None:
    client.post(f"{API}/tickets", json=ticket_body(), headers=auth["op2"])
    client.post(
        f"{API}/tickets",
        json={
            **ticket_body("OPEN-1", pool="pool1"),
            "events": [{"type": "reported", "at": "2026-11-28T13:50:00+08:00"}],
        },
        headers=auth["op1"],
    )
    families = scrape(client)
    open_ = samples(families, "slamon_tickets_open")
    assert open_[(("pool", "pool1"), ("severity", "major"))] == 1
    assert open_[(("pool", "pool2"), ("severity", "major"))] == 0
    breaches = samples(families, "slamon_sla_breaches_total")
    assert (
        breaches[
            (("pool", "pool2"), ("review", "pending"), ("severity", "major"), ("target", "arrival"))
        ]
        == 1
    )
    targets = samples(families, "slamon_sla_targets")
    assert (
        targets[
            (("pool", "pool1"), ("severity", "major"), ("status", "running"), ("target", "arrival"))
        ]
        == 1
    )
    score = samples(families, "slamon_indicator_score")
    assert score[(("indicator", "fault_timeliness"), ("year", "2022"))] == 2.0
    assert score[(("indicator", "fault_timeliness"), ("year", "2026"))] == 3.0
    arrival = samples(families, "slamon_arrival_duration_seconds_bucket")
    assert arrival[(("le", "1800.0"), ("pool", "pool2"), ("severity", "major"))] == 0
    assert arrival[(("le", "3600.0"), ("pool", "pool2"), ("severity", "major"))] == 1
    assert samples(families, "slamon_calendar_last_known_year")[()] >= 2026
    # The 2022 ticket's three events were all entered in 2026.
    assert samples(families, "slamon_findings_open")[(("kind", "late_entry"),)] == 3


def test_a_metrics_token_can_be_required(client: TestClient, app: Any) -> None:
    app.state.monitor.settings.metrics_token = "s3cret"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_promtool_finds_the_real_output_clean(
    client: TestClient, auth: Any, tmp_path: Path
) -> None:
    client.post(f"{API}/tickets", json=ticket_body(), headers=auth["op2"])
    text = client.get("/metrics").text
    result = subprocess.run(
        [tool("promtool"), "check", "metrics"],
        input=text,
        text=True,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_names_module_covers_what_queries_may_use() -> None:
    names = exported_series_names()
    assert "slamon_sla_breaches_total" in names
    assert "slamon_resolution_duration_seconds_bucket" in names
