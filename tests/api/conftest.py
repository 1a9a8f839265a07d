"""An app per database, with a token for each kind of caller."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from monitor.api.app import create_app
from monitor.auth.service import create_token
from monitor.core.clock import FixedClock
from monitor.core.db import session_scope
from monitor.core.settings import Settings

CALLERS = {
    "op2": ("operator", "pool2"),
    "op1": ("operator", "pool1"),
    "supervisor": ("supervisor", None),
    "admin": ("admin", None),
    "evaluator": ("evaluator", None),
}


@pytest.fixture
def app(settings: Settings, engine: Engine, clock: FixedClock) -> FastAPI:
    return create_app(settings, clock=clock, engine=engine)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def auth(client: TestClient, engine: Engine, clock: FixedClock) -> dict[str, dict[str, str]]:
    headers = {"anonymous": {}}
    with session_scope(engine) as session:
        for name, (role, pool) in CALLERS.items():
            _, value = create_token(
                session,
                name=name,
                role=role,
                pool=pool,
                known_pools=["pool1", "pool2"],
                now=clock.now(),
            )
            headers[name] = {"Authorization": f"Bearer {value}"}
    return headers


def ticket_body(
    external_id: str = "EX-0001", pool: str = "pool2", **extra: object
) -> dict[str, object]:
    return {
        "external_id": external_id,
        "pool": pool,
        "severity": "major",
        "title": "重要业务系统异常",
        "source": "user_report",
        "events": [
            {"type": "reported", "at": "2022-08-10T11:41:00+08:00"},
            {"type": "arrived", "at": "2022-08-10T12:30:00+08:00"},
            {"type": "resolved", "at": "2022-08-17T18:00:00+08:00"},
        ],
        **extra,
    }
