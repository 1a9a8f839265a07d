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


def mount_static(app: FastAPI) -> None:
    """The pages' static files at /static (the pages themselves are `router`'s)."""
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
