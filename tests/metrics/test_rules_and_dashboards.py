"""Alert rules and dashboards: valid, tested, current, and querying only declared metrics."""

from __future__ import annotations

import json
import shutil
import subprocess

from monitor.metrics.dashboards import BOARDS, render
from monitor.metrics.names import exported_series_names
from tests.metrics.tools import (
    DASHBOARDS,
    dashboard_exprs,
    rule_exprs,
    schema_check_ready,
    series_names,
    tool,
)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args), cwd=DASHBOARDS, text=True, capture_output=True, timeout=120, check=False
    )


def test_rules_pass_promtool_check_and_their_unit_tests() -> None:
    checked = run(tool("promtool"), "check", "rules", "alerts.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = run(
        tool("promtool"),
        "test",
        "rules",
        "alerts_test.yml",
        "alerts_calendar_test.yml",
        "alerts_notifications_test.yml",
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_regenerating_the_dashboards_gives_the_committed_files() -> None:
    for name in BOARDS:
        committed = (DASHBOARDS / name).read_text(encoding="utf-8")
        assert committed == render(name), f"dashboards/{name} is stale: run `make dashboards`"


def test_dashboards_use_a_datasource_variable_and_pool_and_severity_variables() -> None:
    for name in BOARDS:
        board = json.loads((DASHBOARDS / name).read_text(encoding="utf-8"))
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        assert {"pool", "severity"} <= set(variables)
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                assert target["datasource"]["uid"] == "${datasource}"
                assert target["refId"]


def test_every_queried_metric_is_declared() -> None:
    declared = exported_series_names()
    used = set()
    for exprs in dashboard_exprs().values():
        for expr in exprs:
            used |= series_names(expr)
    for expr in rule_exprs():
        used |= series_names(expr)
    assert used, "no queries found"
    assert used <= declared, f"undeclared: {sorted(used - declared)}"


def _typecheck(boards: dict[str, str]) -> subprocess.CompletedProcess[str]:
    folder = schema_check_ready()
    generated = folder / ".generated"
    shutil.rmtree(generated, ignore_errors=True)
    generated.mkdir()
    for name, text in boards.items():
        ident = name.removesuffix(".json").replace("-", "_")
        (generated / f"{ident}.ts").write_text(
            'import type { Dashboard } from "@grafana/schema";\n'
            f"export const {ident}: Dashboard = {text.strip()};\n",
            encoding="utf-8",
        )
    npx = shutil.which("npx")
    assert npx is not None
    return subprocess.run(
        [npx, "--no-install", "tsc", "-p", "tsconfig.json"],
        cwd=folder,
        text=True,
        capture_output=True,
        timeout=300,
        check=False,
    )


def test_dashboards_type_check_against_grafanas_schema() -> None:
    result = _typecheck({name: (DASHBOARDS / name).read_text(encoding="utf-8") for name in BOARDS})
    assert result.returncode == 0, result.stdout + result.stderr
    # The check itself can fail: a panel Grafana would not accept is caught.
    broken = json.loads((DASHBOARDS / "sla-overview.json").read_text(encoding="utf-8"))
    broken["panels"][1]["repeatDirection"] = "diagonal"
    result = _typecheck({"broken.json": json.dumps(broken, ensure_ascii=False)})
    assert result.returncode != 0 and "diagonal" in result.stdout
