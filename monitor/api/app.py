"""The application factory: API, health checks and (optionally) the scheduler in one process;
and the one `serve --workers` starts in each of its processes."""

from __future__ import annotations

import gc
import json
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache, partial

from fastapi import APIRouter, FastAPI
from sqlalchemy.engine import Engine
from uvicorn.config import STARTUP_FAILURE

from monitor.api import errors, ops
from monitor.api.deps import AppState
from monitor.api.limits import BodyLimit
from monitor.breaches.router import router as breaches_router
from monitor.core.clock import Clock, SystemClock
from monitor.core.db import ensure_schema, make_engine, refresh_statistics, session_scope
from monitor.core.settings import Settings, get_settings
from monitor.demo.data import demo_tokens, demo_users, load_demo
from monitor.judging.flow import write_flow
from monitor.judging.jobs import sync_calendar
from monitor.metrics.collector import make_registry
from monitor.reports.router import router as reports_router
from monitor.scheduler.runner import Runner
from monitor.scoring.router import router as scoring_router
from monitor.sla.service import ContextCache
from monitor.tickets.router import router as tickets_router
from monitor.web import router as web

API_PREFIX = "/api/v1"
log = logging.getLogger("monitor")


def prepare(app_state: AppState, demo: bool) -> None:
    """Schema and policy versions first (and the demo year): what a server does once before
    it serves (`serve --workers` once, in the process that starts the workers)."""
    ensure_schema(app_state.engine)
    with session_scope(app_state.engine) as session:
        ctx = app_state.contexts.get(session)  # stores new policy versions once
        with write_flow(session, ctx) as flow:
            loaded = load_demo(flow) if demo else 0
            # Said at start, not only after the first daily job.
            for missing in sync_calendar(flow)[1]:
                log.warning("calendar_missing: %s", missing)
        if loaded:
            for line in demo_tokens(session, ctx) + demo_users(session, ctx):
                log.warning(line)
    with app_state.engine.begin() as connection:
        refresh_statistics(connection)


@asynccontextmanager
async def lifespan(
    _: FastAPI, *, app_state: AppState, demo: bool, scheduler: bool, prepared: bool
) -> AsyncIterator[None]:
    """`prepare` (unless done already); then the scheduler, if asked."""
    if not prepared:
        prepare(app_state, demo)
    if scheduler:
        app_state.runner = Runner(app_state.engine, app_state.settings, app_state.clock)
        app_state.runner.start()
    try:
        yield
    finally:
        if app_state.runner is not None:
            app_state.runner.stop()


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    engine: Engine | None = None,
    scheduler: bool = False,
    demo: bool = False,
    metrics_open: bool = True,
    prepared: bool = False,
) -> FastAPI:
    """The application. `metrics_open` False closes /metrics unless SLAMON_METRICS_TOKEN is
    set: `serve` passes it for any address beyond loopback. `prepared`: `prepare` has run."""
    settings = settings or get_settings()
    engine = engine or make_engine(settings.database_url)
    clock = clock or SystemClock()
    app_state = AppState(
        settings=settings, engine=engine, clock=clock, contexts=ContextCache(settings, clock)
    )

    app = FastAPI(
        title="SLA Monitor",
        version="0.1.0",
        # FastAPI's own OpenTelemetry hooks asked the global providers (environment lookups)
        # on every request, 2 % of a write's time, for tracing nobody configures here.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        summary="Fault tickets against the contract SLA: deadlines, breaches, review, scoring.",
        lifespan=partial(
            lifespan, app_state=app_state, demo=demo, scheduler=scheduler, prepared=prepared
        ),
        docs_url=None,  # served by the web UI with vendored assets, so they work offline
        redoc_url=None,
    )
    app.state.monitor = app_state
    errors.install(app)
    app.add_middleware(
        BodyLimit,
        default=settings.max_body_bytes,
        uploads=settings.evidence_max_bytes + 64 * 1024,  # the file and its form fields
    )
    app.router.routes.extend(_routes().routes)
    web.mount_static(app)
    app.state.registry = make_registry(engine, settings)
    app.state.metrics_open = metrics_open
    return app


@cache
def _routes() -> APIRouter:
    """Every route of the API, the pages and the health checks, built once in a process:
    FastAPI analyses each route's parameters and dependencies when it is first included or
    matched, a few milliseconds a route, which every application made again (each test's).
    Shared, they belong to no application: `app.dependency_overrides` does not reach them
    (nothing here uses it; a test that would, builds its own routes)."""
    api = APIRouter(prefix=API_PREFIX)
    for router in (tickets_router, breaches_router, scoring_router, reports_router):
        api.include_router(router)
    routes = APIRouter()
    for router in (api, web.router, ops.router):
        routes.include_router(router)
    return routes


# What `serve --workers` hands each of its processes: they start from nothing (uvicorn spawns
# them), with the environment, so the settings come as they came to `serve`.
WORKER_OPTIONS = "SLAMON_SERVE_WORKER"


def worker_app() -> FastAPI:
    """The application of one `serve --workers` process; uvicorn calls it in each."""
    options = json.loads(os.environ[WORKER_OPTIONS])
    try:
        app = create_app(
            scheduler=options["scheduler"], metrics_open=options["metrics_open"], prepared=True
        )
    except Exception:
        # uvicorn's supervisor would start it again and again: said as a failed start, it
        # stops the server instead, and `serve` exits 1.
        log.exception("this worker cannot start")
        raise SystemExit(STARTUP_FAILURE) from None
    # As `serve` does for one process: what lives as long as the process is left out of the
    # collector's full passes.
    gc.collect()
    gc.freeze()
    return app
