"""Domain errors become HTTP answers here, and only here."""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from monitor.core.config_files import loc_path, pin_field
from monitor.core.errors import DomainError, InvalidInput

log = logging.getLogger("monitor")


def responses(thing: str) -> dict[int | str, dict[str, Any]]:
    """The error answers every API route can give, for the OpenAPI description."""
    return {
        401: {"description": "no or bad token"},
        403: {"description": "role not allowed"},
        404: {"description": f"no such {thing} (or another pool's)"},
        409: {"description": "conflicts with what is stored (the message says what)"},
        422: {"description": "bad input; each problem names its field"},
    }


def error_body(exc: DomainError) -> dict[str, Any]:
    if isinstance(exc, InvalidInput):
        return {"detail": [{"loc": p.loc, "msg": p.msg} for p in exc.problems]}
    return {"detail": exc.message if not exc.loc else f"{exc.loc}: {exc.message}"}


def _server_error(exc: Exception) -> JSONResponse:
    log.error("unexpected error", exc_info=exc)
    return JSONResponse(
        {"detail": "internal error: the request was not carried out; it has been logged"},
        status_code=500,
    )


# PostgreSQL's codes for a lock not had within `lock_timeout` and for a deadlock (either
# way the transaction was rolled back: retrying it is safe).
LOCK_TIMEOUT, DEADLOCK = "55P03", "40P01"


def busy(request: Request, exc: Exception) -> bool:
    """Whether a database error means another writer, or a pool with no connection free,
    kept this request waiting too long: answered 503, retry shortly, nothing written (the
    API's JSON, a page's Chinese page). Logged here, for both: a deadlock as an error with
    its trace (a fault of lock order, though safe to retry), the rest as warnings."""
    if isinstance(exc, sa.exc.TimeoutError):  # e.g. writes waiting for an import (or leaked)
        state = getattr(request.app.state, "monitor", None)
        pool = state.engine.pool.status() if state is not None else "?"
        log.warning("no database connection free (%s): %s", pool, exc)
        return True
    if not isinstance(exc, sa.exc.OperationalError) or exc.connection_invalidated:
        return False
    code, text = getattr(exc.orig, "sqlstate", None), str(exc.orig)
    if code == DEADLOCK:
        log.error("deadlock, answered 503", exc_info=exc)
        return True
    # SQLite: "database is locked", "database table is locked", "busy"
    if code == LOCK_TIMEOUT or "locked" in text or "busy" in text:
        log.warning("database busy: %s", exc.orig)
        return True
    return False


def lost(exc: Exception) -> bool:
    """Whether the request's database connection was lost under it (PostgreSQL restarting
    or failing over): answered 503, but unlike `busy` a write's outcome is unknown (the
    connection may have dropped after its COMMIT reached the server). Logged here."""
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        log.warning("database connection lost: %s", exc.orig)
        return True
    return False


def _busy_answer() -> JSONResponse:
    return JSONResponse(
        {"detail": "the database is busy with another write; retry shortly"},
        status_code=503,
        headers={"Retry-After": "5"},
    )


def _lost_answer() -> JSONResponse:
    return JSONResponse(
        {
            "detail": "the database connection was lost; a write may or may not have been "
            "saved: retry it with the same Idempotency-Key, or read before writing again"
        },
        status_code=503,
        headers={"Retry-After": "5"},
    )


def install(app: FastAPI) -> None:
    from monitor.api.idempotency import Replay  # idempotency answers with error_body

    @app.exception_handler(Replay)
    async def _replay(_: Request, exc: Replay) -> JSONResponse:
        return exc.answer.response(replayed=True)

    @app.exception_handler(DomainError)
    async def _domain(_: Request, exc: DomainError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse(error_body(exc), status_code=exc.status, headers=headers)

    @app.exception_handler(sa.exc.OperationalError)
    @app.exception_handler(sa.exc.TimeoutError)
    async def _busy(request: Request, exc: Exception) -> JSONResponse:
        if busy(request, exc):
            return _busy_answer()
        return _lost_answer() if lost(exc) else _server_error(exc)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        return _server_error(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        detail = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            if loc and loc[0] in ("body", "query", "path", "header"):
                where = loc[0]
                loc = loc[1:]
                if where != "body" and loc:
                    loc = (f"{where}.{loc[0]}", *loc[1:])
            msg = str(err["msg"]).removeprefix("Value error, ")
            where, what = pin_field(loc_path(loc), msg)
            detail.append({"loc": where, "msg": what})
        return JSONResponse({"detail": detail}, status_code=422)
