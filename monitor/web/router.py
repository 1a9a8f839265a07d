"""The web UI's routes and assets, mounted by the application factory."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from monitor.web import (
    admin,
    docs,
    findings,
    home,
    login,
    notices,
    reviews,
    scoring,
    tickets,
)
from monitor.web.render import HERE

router = APIRouter(include_in_schema=False)
for module in (login, home, tickets, reviews, findings, scoring, notices, admin, docs):
    router.include_router(module.router)


def mount(app: FastAPI) -> None:
    """Pages at /, their static files at /static, the API docs at /docs and /redoc."""
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
