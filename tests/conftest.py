"""Fixtures: every database test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session

import monitor.models  # noqa: F401
from monitor.api.app import create_app
from monitor.auth.service import create_token
from monitor.core.clock import FixedClock
from monitor.core.db import make_engine, session_scope, upgrade
from monitor.core.grants import grant
from monitor.core.settings import Settings
from monitor.sla.service import SlaContext, load_context

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "config"
PG_URL = os.environ.get(
    "SLAMON_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
APP_ROLE = "slamon_test_app"
APP_URL = make_url(PG_URL).set(username=APP_ROLE).render_as_string(hide_password=False)
NOW = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)


def unavailable(reason: str) -> None:
    """In CI a missing dependency fails the run; on a workstation it skips."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: a missing test dependency is a failure)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_engine() -> Iterator[Engine]:
    engine = make_engine(PG_URL)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:  # pragma: no cover - depends on the machine
        engine.dispose()
        unavailable(f"PostgreSQL at {PG_URL} is not reachable: {exc}")
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    upgrade(PG_URL)
    # Migrate as the owner, serve as the app role: every test talks to PostgreSQL as the role
    # the product is deployed with, so a right it lacks fails here first.
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                f"DO $$ BEGIN CREATE ROLE {APP_ROLE} LOGIN; "
                "EXCEPTION WHEN duplicate_object THEN NULL; END $$"
            )
        )
    grant(engine, APP_ROLE)
    yield engine
    engine.dispose()


def _truncate(engine: Engine) -> None:
    """Empty every table and restart its ids, as `TRUNCATE … RESTART IDENTITY CASCADE` did, but
    by DELETE: a TRUNCATE makes new files for each of the ~100 tables, indexes and sequences
    and took 0.2 s before every PostgreSQL test, where deleting the few rows a test leaves
    takes milliseconds. Every table but Alembic's: those the models declare and the one a
    trigger keeps (ticket_grams, which CASCADE reached and which, with the guards off, a
    DELETE no longer cascades to)."""
    with engine.begin() as conn:
        conn.execute(sa.text("SET LOCAL session_replication_role = replica"))  # past the guards
        tables = conn.execute(
            sa.text(
                "SELECT quote_ident(tablename) FROM pg_tables "
                "WHERE schemaname = current_schema() AND tablename <> 'alembic_version'"
            )
        ).scalars()
        conn.execute(sa.text("; ".join(f"DELETE FROM {name}" for name in tables)))
        # RESTART IDENTITY: the sequences owned by those tables' columns, to their start.
        conn.execute(
            sa.text(
                "SELECT setval(q.seqrelid, q.seqstart, false) FROM pg_sequence q "
                "JOIN pg_depend d ON d.classid = 'pg_class'::regclass "
                "AND d.objid = q.seqrelid AND d.deptype IN ('a', 'i') "
                "JOIN pg_class t ON t.oid = d.refobjid "
                "WHERE t.relnamespace = current_schema()::regnamespace"
            )
        )


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "test.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    _truncate(request.getfixturevalue("pg_engine"))
    return APP_URL


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=db_url, config_dir=CONFIG, evidence_dir=tmp_path / "evidence")


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as session:
        yield session
        session.rollback()


@pytest.fixture
def ctx(session: Session, settings: Settings, clock: FixedClock) -> SlaContext:
    context = load_context(session, settings, clock)
    session.commit()
    return context


# The HTTP application, with a token for each kind of caller ----------------------------

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
