"""Domain errors become HTTP answers here, and only here."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from monitor.core.config_files import loc_path
from monitor.core.errors import DomainError, InvalidInput


def error_body(exc: DomainError) -> dict[str, Any]:
    if isinstance(exc, InvalidInput):
        return {"detail": [{"loc": p.loc, "msg": p.msg} for p in exc.problems]}
    return {"detail": exc.message if not exc.loc else f"{exc.loc}: {exc.message}"}


def install(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(_: Request, exc: DomainError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse(error_body(exc), status_code=exc.status, headers=headers)

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
            detail.append({"loc": loc_path(loc), "msg": msg})
        return JSONResponse({"detail": detail}, status_code=422)
