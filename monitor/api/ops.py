"""What operations people and Prometheus call: /metrics, /healthz and /readyz."""

from __future__ import annotations

import hmac
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from monitor.api.deps import App
from monitor.core.db import schema_state

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request, app: App) -> Response:
    """Prometheus exposition, read from the database at scrape time."""
    expected = app.settings.metrics_token
    if not expected and not request.app.state.metrics_open:
        return Response(
            "/metrics is closed: this server listens beyond loopback and "
            "SLAMON_METRICS_TOKEN is not set (see the README, section Security)\n",
            status_code=403,
        )
    if expected:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given, f"Bearer {expected}"):
            return Response(
                "a bearer token is required\n",
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
    registry = request.app.state.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/healthz", tags=["health"])
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", tags=["health"], responses={503: {"description": "not ready"}})
def readyz(app: App) -> JSONResponse:
    """Database reachable, migrations current, scheduler state."""
    body: dict[str, Any] = {"database": "ok", "migrations": "current"}
    ready = True
    try:
        current, head = schema_state(app.engine)
        if current != head:
            body["migrations"] = f"at {current}, code needs {head}"
            ready = False
    except sa.exc.SQLAlchemyError as exc:
        body["database"] = f"unreachable: {type(exc).__name__}"
        body["migrations"] = "unknown"  # (not read: the database did not answer)
        ready = False
    runner = app.runner
    body["scheduler"] = runner.describe() if runner else {"running": False, "disabled": True}
    body["status"] = "ready" if ready else "not ready"
    return JSONResponse(body, status_code=200 if ready else 503)
