"""The two set-up commands are all a newcomer needs: `make test` installs what the tests
use, and the server says where everything is and how to get in."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest
from typer.testing import CliRunner

from monitor.cli import app
from tests.conftest import CONFIG, ROOT, unavailable


def test_make_test_installs_the_dashboard_checks_node_packages() -> None:
    if shutil.which("make") is None:
        unavailable("make is not installed")
    # As on a fresh clone: the lock file is newer than any install.
    plan = subprocess.run(
        ["make", "-n", "-W", "dashboards/schema-check/package-lock.json", "test"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "npm ci" in plan and "cd dashboards/schema-check" in plan
    assert plan.index("npm ci") < plan.index("pytest")


def test_serve_prints_the_ui_docs_metrics_and_how_to_get_a_token(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    monkeypatch.setenv("SLAMON_DATABASE_URL", db_url)
    monkeypatch.setenv("SLAMON_CONFIG_DIR", str(CONFIG))
    started: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: started.append(kw))
    result = CliRunner().invoke(app, ["serve", "--port", "8651", "--no-scheduler"])
    assert result.exit_code == 0, result.output
    banner = result.stderr
    lines = banner.splitlines()
    assert any(line.split()[-1] == "http://127.0.0.1:8651/" for line in lines if "UI" in line)
    for url in ("/docs", "/metrics", "/openapi.json", "/healthz"):
        assert f"http://127.0.0.1:8651{url}" in banner, url
    assert "token create --role" in banner and "user create" in banner
    assert started and started[0]["port"] == 8651


def test_the_server_raises_calendar_missing_as_it_starts(client: Any, auth: dict[str, Any]) -> None:
    # The fixed clock is 28 November 2026 and the calendar stops at 2026.
    found = client.get(
        "/api/v1/findings", params={"kind": "calendar_missing"}, headers=auth["supervisor"]
    ).json()
    assert found["total"] == 1 and "2027" in found["items"][0]["detail"]
