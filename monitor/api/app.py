"""The application factory: API, health checks and (optionally) the scheduler in one process."""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.engine import Engine

from monitor.api import errors
from monitor.api.deps import AppState
from monitor.breaches.router import router as breaches_router
from monitor.core.clock import Clock, SystemClock
from monitor.core.db import ensure_schema, make_engine, schema_state, session_scope
from monitor.core.settings import Settings, get_settings
from monitor.metrics.collector import make_registry
from monitor.scheduler.runner import Runner
from monitor.scoring.router import router as scoring_router
from monitor.sla.service import ContextCache
from monitor.tickets.router import router as tickets_router

API_PREFIX = "/api/v1"
log = logging.getLogger("monitor")


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    engine: Engine | None = None,
    scheduler: bool = False,
    demo: bool = False,
) -> FastAPI:
    settings = settings or get_settings()
    engine = engine or make_engine(settings.database_url)
    clock = clock or SystemClock()
    app_state = AppState(
        settings=settings, engine=engine, clock=clock, contexts=ContextCache(settings, clock)
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        ensure_schema(engine)
        with session_scope(engine) as session:
            ctx = app_state.contexts.get(session)  # stores new policy versions once
            if demo:
                from monitor.demo.data import demo_tokens, load_demo

                if load_demo(session, ctx):
                    for line in demo_tokens(session, ctx):
                        log.warning(line)
        if scheduler:
            app_state.runner = Runner(engine, settings, clock)
            app_state.runner.start()
        try:
            yield
        finally:
            if app_state.runner is not None:
                app_state.runner.stop()

    app = FastAPI(
        title="SLA Monitor",
        version="0.1.0",
        summary="Fault tickets against the contract SLA: deadlines, breaches, review, scoring.",
        lifespan=lifespan,
    )
    app.state.monitor = app_state
    errors.install(app)
    api = APIRouter(prefix=API_PREFIX)
    api.include_router(tickets_router)
    api.include_router(breaches_router)
    api.include_router(scoring_router)
    app.include_router(api)

    registry = make_registry(engine, settings)

    @app.get("/metrics", include_in_schema=False)
    def metrics(request: Request) -> Response:
        """Prometheus exposition, read from the database at scrape time."""
        expected = settings.metrics_token
        if expected:
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given, f"Bearer {expected}"):
                return Response(
                    "a bearer token is required\n",
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses={503: {"description": "not ready"}})
    def readyz() -> JSONResponse:
        """Database reachable, migrations current, scheduler state."""
        body: dict[str, Any] = {"database": "ok", "migrations": "current"}
        ready = True
        try:
            current, head = schema_state(engine)
            if current != head:
                body["migrations"] = f"at {current}, code needs {head}"
                ready = False
        except sa.exc.SQLAlchemyError as exc:
            body["database"] = f"unreachable: {type(exc).__name__}"
            ready = False
        runner = app_state.runner
        body["scheduler"] = runner.describe() if runner else {"running": False, "disabled": True}
        body["status"] = "ready" if ready else "not ready"
        return JSONResponse(body, status_code=200 if ready else 503)

    return app
