"""/readyz: what a load balancer or an orchestrator asks before sending a replica requests."""

from __future__ import annotations

import sqlite3

import pytest
from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from monitor.api.app import create_app
from monitor.core.clock import FixedClock
from monitor.core.db import SCHEMA_HEAD, alembic_config, make_engine
from monitor.core.settings import Settings


def test_a_replica_is_ready_on_a_current_schema(
    settings: Settings, engine: Engine, clock: FixedClock
) -> None:
    with TestClient(create_app(settings, clock=clock, engine=engine)) as client:
        r = client.get("/readyz")
    assert r.status_code == 200
    assert r.json()["migrations"] == "current" and r.json()["status"] == "ready"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_replica_is_ready_while_a_writer_holds_the_sqlite_file(
    settings: Settings, engine: Engine, clock: FixedClock, db_url: str
) -> None:
    """An import holds SQLite's write lock for its whole length: the probe only reads, so it
    answers at once instead of waiting out the busy timeout and calling the file lost."""
    engine = make_engine(db_url, busy_seconds=2)
    writer = sqlite3.connect(db_url.removeprefix("sqlite:///"), isolation_level=None)
    with TestClient(create_app(settings, clock=clock, engine=engine)) as client:
        writer.execute("BEGIN IMMEDIATE")
        try:
            r = client.get("/readyz")  # (before: 503 "unreachable" after the busy timeout)
        finally:
            writer.execute("ROLLBACK")
            writer.close()
    engine.dispose()
    assert r.status_code == 200, r.text
    assert r.json()["database"] == "ok" and r.json()["migrations"] == "current"


# Only SQLite: the serving role on PostgreSQL may not change the schema, and the other tests
# share that database's schema.
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_replica_whose_database_went_back_a_migration_is_not_ready(
    settings: Settings, engine: Engine, clock: FixedClock, db_url: str
) -> None:
    with TestClient(create_app(settings, clock=clock, engine=engine)) as client:
        command.downgrade(alembic_config(db_url), "-1")
        r = client.get("/readyz")
    assert r.status_code == 503 and r.json()["status"] == "not ready"
    assert r.json()["migrations"].endswith(f", code needs {SCHEMA_HEAD}")


def test_a_replica_whose_database_is_unreachable_is_not_ready(
    settings: Settings, engine: Engine, clock: FixedClock
) -> None:
    # Nothing listens on port 1: the database's connection fails as a lost server's would.
    unreachable = make_engine(
        "postgresql+psycopg://slamon@127.0.0.1:1/none", connect_args={"connect_timeout": 2}
    )
    app = create_app(settings, clock=clock, engine=engine)
    try:
        with TestClient(app) as client:
            app.state.monitor.engine = unreachable
            r = client.get("/readyz")
            app.state.monitor.engine = engine
    finally:
        unreachable.dispose()
    assert r.status_code == 503 and r.json()["status"] == "not ready"
    assert r.json()["database"] == "unreachable: OperationalError"
    assert r.json()["migrations"] == "unknown"
