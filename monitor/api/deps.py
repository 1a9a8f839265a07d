"""What every route needs: the engine, the caller, and the one place that checks roles."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Engine

from monitor.auth.service import Principal, authenticate_token
from monitor.core.clock import Clock
from monitor.core.db import read_scope
from monitor.core.errors import Forbidden, Unauthorized
from monitor.core.settings import Settings
from monitor.scheduler.runner import Runner
from monitor.sla.service import ContextCache

bearer = HTTPBearer(auto_error=False, description="an API token from `sla-monitor token create`")


@dataclass
class AppState:
    settings: Settings
    engine: Engine
    clock: Clock
    contexts: ContextCache
    runner: Runner | None = None


def state(request: Request) -> AppState:
    app_state: AppState = request.app.state.monitor
    return app_state


def principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("a bearer token is required")
    with read_scope(state(request).engine) as session:
        found = authenticate_token(session, credentials.credentials)
    if found is None:
        raise Unauthorized("the token is not valid")
    return found


def allow(*roles: str) -> Callable[..., Principal]:
    """A dependency admitting only these roles; every route declares one."""

    def check(who: Annotated[Principal, Depends(principal)]) -> Principal:
        if who.role not in roles:
            raise Forbidden(f"the {who.role} role may not do this")
        return who

    check.roles = roles  # type: ignore[attr-defined]
    return check


READ_TICKETS = allow("operator", "supervisor", "admin", "evaluator")
WRITE_TICKETS = allow("operator", "admin")
WRITE_EVENTS = allow("operator", "supervisor", "admin")
READ_BREACHES = allow("operator", "supervisor", "admin", "evaluator")
REVIEW = allow("supervisor", "admin")
READ_FINDINGS = allow("operator", "supervisor", "admin")
READ_SCORING = allow("supervisor", "admin", "evaluator")

EVENT_SOURCE = {"operator": "operator", "supervisor": "supervisor", "admin": "system"}


def pool_scope(who: Principal) -> str | None:
    """The pool a caller is limited to; another pool's records answer as if absent."""
    return who.pool if who.role == "operator" else None


# A filter value: an id such as a pool, severity or finding kind.
Word = Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_.:-]+$", max_length=64)]

# Ids fit the database's integer column on SQLite and PostgreSQL alike.
MAX_ID = 2_147_483_647
TicketId = Annotated[int, Path(ge=1, le=MAX_ID)]
BreachId = Annotated[int, Path(ge=1, le=MAX_ID)]
