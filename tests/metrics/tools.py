"""The outside tools these tests run: promtool, prometheus, node's tsc."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import yaml

from tests.conftest import ROOT, unavailable

DASHBOARDS = ROOT / "dashboards"
SCHEMA_CHECK = DASHBOARDS / "schema-check"


def tool(name: str, package: str = "prometheus") -> str:
    path = shutil.which(name)
    if path is None:
        unavailable(f"{name} is not installed (Debian package {package})")
    assert path is not None
    return path


def dashboard_exprs() -> dict[str, list[str]]:
    import json

    out = {}
    for path in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text(encoding="utf-8"))
        exprs = []
        for panel in board["panels"]:
            exprs += [t["expr"] for t in panel.get("targets", [])]
        exprs += [v["query"] for v in board["templating"]["list"] if v["type"] == "query"]
        out[path.name] = exprs
    return out


def rule_exprs() -> list[str]:
    data = yaml.safe_load((DASHBOARDS / "alerts.yml").read_text(encoding="utf-8"))
    return [r["expr"] for g in data["groups"] for r in g["rules"]]


def series_names(expr: str) -> set[str]:
    return set(re.findall(r"\bslamon_[a-z_]+\b", expr))


def concrete(expr: str) -> str:
    """A dashboard query with its template variables filled in, as Grafana would."""
    expr = expr.replace("$__rate_interval", "1m").replace("$pool", ".*")
    expr = expr.replace("$severity", ".*")
    match = re.fullmatch(r"label_values\((\w+), (\w+)\)", expr)
    return f"group by ({match.group(2)}) ({match.group(1)})" if match else expr


def schema_check_ready() -> Path:
    if shutil.which("npx") is None or not (SCHEMA_CHECK / "node_modules" / "typescript").exists():
        unavailable(
            "node and dashboards/schema-check/node_modules are needed "
            "(`npm ci` in dashboards/schema-check)"
        )
    return SCHEMA_CHECK
