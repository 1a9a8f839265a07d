"""Schema and storage guarantees on both databases."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from monitor.audit.models import AuditRecord
from monitor.audit.service import append
from monitor.audit.verify import verify
from monitor.calendars.models import CalendarLoad
from monitor.core.db import (
    SCHEMA_HEAD,
    alembic_config,
    ensure_schema,
    make_engine,
    read_connection,
    read_scope,
    schema_state,
    write_queue,
)


def test_the_models_and_the_migrations_agree(db_url: str) -> None:
    # alembic check raises when autogenerate would produce a new migration.
    command.check(alembic_config(db_url))


def test_the_schema_the_code_needs_is_the_newest_migration(db_url: str) -> None:
    # The code knows its schema's revision without alembic; a new migration must update it.
    from alembic.script import ScriptDirectory

    assert ScriptDirectory.from_config(alembic_config(db_url)).get_current_head() == SCHEMA_HEAD
    engine = make_engine(db_url)
    try:
        assert schema_state(engine) == (SCHEMA_HEAD, SCHEMA_HEAD)
    finally:
        engine.dispose()


def test_instants_come_back_aware_utc(session: Session) -> None:
    at = datetime(2022, 8, 10, 11, 41, tzinfo=timezone(timedelta(hours=8)))
    append(session, at=at, actor="t", action="test", entity="x", entity_id=1, payload={})
    session.commit()
    row = session.exec(select(AuditRecord)).one()
    assert row.at == at
    assert row.at.tzinfo is not None and row.at.utcoffset() == timedelta(0)


def test_naive_instants_are_refused_by_the_column_type(session: Session) -> None:
    naive = datetime(2022, 1, 1)  # noqa: DTZ001
    session.add(CalendarLoad(year=2027, source="x", body={}, loaded_at=naive, loaded_by="t"))
    with pytest.raises(sa.exc.StatementError, match="naive datetime"):
        session.flush()


def test_a_reader_does_not_block_a_writer(engine: Engine) -> None:
    with read_scope(engine) as reader:
        assert verify(reader).ok
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE findings SET detail = detail WHERE id < 0"))


def test_sqlite_runs_in_wal_with_full_sync_and_foreign_keys(tmp_path: object) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/x.db")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000


def test_an_imports_sqlite_connection_keeps_its_undo_in_memory_and_a_large_cache(
    tmp_path: object,
) -> None:
    # A command writing one large transaction (an import): its statement journal in memory,
    # not a temporary file, and a page cache its indexes fit in; as durable as any other.
    # The server's connections keep SQLite's defaults (their sorts stay on disk).
    for bulk, temp_store, cache_size in ((True, 2, -65536), (False, 0, -2000)):
        engine = make_engine(f"sqlite:///{tmp_path}/bulk-{bulk}.db", bulk=bulk)
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA temp_store").scalar() == temp_store
            assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == cache_size
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2
        engine.dispose()


HOLD_THE_WRITERS = """
import sys, time
from monitor.core.db import make_engine, write_queue
with write_queue(make_engine(sys.argv[1])):
    print("held", flush=True)
    time.sleep(60)
"""


def test_the_writers_of_two_server_processes_take_turns_on_one_sqlite_file(
    tmp_path: Path,
) -> None:
    """Another process's writer holds the turn: a writer here waits at most its busy timeout
    and is then refused as SQLite refuses (503), writing nothing; one with time left goes in
    as soon as that process is gone, even killed, without sleeping through SQLite's busy
    handler."""
    url = f"sqlite:///{tmp_path}/x.db"
    other = subprocess.Popen(
        [sys.executable, "-c", HOLD_THE_WRITERS, url], stdout=subprocess.PIPE, text=True
    )
    impatient, patient = make_engine(url, busy_seconds=0.3), make_engine(url, busy_seconds=30)
    entered = threading.Event()
    failed: list[BaseException] = []

    def write(engine: Engine, table: str) -> None:
        try:
            with write_queue(engine), engine.begin() as conn:
                conn.exec_driver_sql(f"CREATE TABLE {table} (n INTEGER)")
                entered.set()
        except sa.exc.OperationalError as exc:
            failed.append(exc)

    try:
        assert other.stdout is not None and other.stdout.readline() == "held\n"
        assert (tmp_path / "x.db-writers").exists()
        write(impatient, "refused")
        assert len(failed) == 1 and "database is locked" in str(failed[0])
        writer = threading.Thread(target=write, args=(patient, "turn"))
        writer.start()
        assert not entered.wait(1.0)  # well past the other's busy timeout: it waits
        other.kill()
        assert entered.wait(5.0)
        writer.join()
    finally:
        other.kill()
        other.wait()
    assert len(failed) == 1
    with patient.connect() as conn:
        tables = conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table'")
        assert [name for (name,) in tables] == ["turn"]
    impatient.dispose()
    patient.dispose()


def test_an_empty_database_is_created_and_an_outdated_one_refused(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/new.db"
    engine = make_engine(url)
    ensure_schema(engine)
    assert "tickets" in sa.inspect(engine).get_table_names()
    assert schema_state(engine) == (SCHEMA_HEAD, SCHEMA_HEAD)
    # A second row would be a second head, which alembic refuses to name: not current.
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO alembic_version VALUES ('0000aaaa0000')")
    assert schema_state(engine) == (f"0000aaaa0000, {SCHEMA_HEAD}", SCHEMA_HEAD)
    with pytest.raises(RuntimeError, match="sla-monitor db upgrade"):
        ensure_schema(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM alembic_version WHERE version_num = '0000aaaa0000'")
    command.downgrade(alembic_config(url), "-1")
    with engine.connect() as conn:
        older = MigrationContext.configure(conn).get_current_revision()
    assert older not in (None, SCHEMA_HEAD)
    assert schema_state(engine) == (older, SCHEMA_HEAD)
    with pytest.raises(RuntimeError, match=f"at {older}, the code needs {SCHEMA_HEAD}"):
        ensure_schema(engine)
    command.downgrade(alembic_config(url), "base")
    assert schema_state(engine) == (None, SCHEMA_HEAD)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE unrelated (x int)")
    with pytest.raises(RuntimeError, match="sla-monitor db upgrade"):
        ensure_schema(engine)


def test_reads_keep_the_postgresql_drivers_prepared_statements(pg_engine: Engine) -> None:
    # The driver prepares a statement run five times on a connection and drops them all at a
    # ROLLBACK: reads that ended by rollback had every request's statements planned anew.
    engine = make_engine(pg_engine.url.render_as_string(hide_password=False))
    query = "SELECT count(*) FROM findings WHERE id > ?"
    try:
        for _ in range(7):
            with read_connection(engine) as reader:
                assert reader.first(query, 0) == (0,)
            with read_scope(engine) as session:
                session.execute(sa.text("SELECT count(*) FROM tickets WHERE id > :i"), {"i": 0})
        held = "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE ?"
        with read_connection(engine) as reader:  # the token reads' own pool
            assert reader.first(held, "%FROM findings%") == (1,)
        with read_scope(engine) as session:
            prepared = session.execute(
                sa.text("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE :s"),
                {"s": "%FROM tickets%"},
            ).scalar()
        assert prepared == 1
    finally:
        engine.dispose()


def test_a_read_on_postgresql_cannot_write(pg_engine: Engine) -> None:
    # A read ends by COMMIT (to keep those statements), and the token read is a transaction
    # of its own: neither may be one that can write.
    engine = make_engine(pg_engine.url.render_as_string(hide_password=False))
    update = "UPDATE findings SET detail = detail WHERE id < 0"
    try:
        with read_scope(engine) as session, pytest.raises(sa.exc.InternalError, match="read-only"):
            session.execute(sa.text(update))
        with read_connection(engine) as reader:
            assert reader.first("SHOW transaction_read_only") == ("on",)
        with pytest.raises(sa.exc.InternalError, match="read-only"), read_connection(engine) as r:
            r.first(update)
        with pytest.raises(sa.exc.InternalError, match="read-only"), read_connection(engine) as r:
            r.first("SELECT 1; INSERT INTO findings (kind) VALUES ('x')")  # several statements
        with pytest.raises(sa.exc.InternalError, match="read-only"), read_connection(engine) as r:
            r.first("SELECT nextval('findings_id_seq')")
        # The engine's own connections write for a writer.
        with engine.begin() as conn:
            assert conn.exec_driver_sql("SHOW transaction_read_only").scalar() == "off"
            conn.exec_driver_sql(update)
    finally:
        engine.dispose()


def test_a_pooled_connection_is_pinged_only_when_it_may_be_lost(
    pg_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A connection in steady use goes out of the pool without a ping (a round trip on
    # every write); one the server ended a moment ago (a restart) is replaced before use,
    # seen by its socket; one unused for longer than the idle limit is pinged.
    from monitor.core import db

    engine = make_engine(pg_engine.url.render_as_string(hide_password=False), pool_size=1)
    pings = []
    ping = engine.dialect.do_ping
    monkeypatch.setattr(engine.dialect, "do_ping", lambda driver: pings.append(1) or ping(driver))
    try:
        for _ in range(3):
            with engine.connect() as conn:
                pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        assert pings == []
        with pg_engine.connect() as admin:
            admin.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")
        for _ in range(50):  # (the server closes it as it ends the backend)
            with pg_engine.connect() as admin:
                gone = admin.exec_driver_sql(
                    f"SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = {pid}"
                ).scalar()
            if gone:
                break
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT pg_backend_pid()").scalar() != pid
        assert len(pings) == 1
        monkeypatch.setattr(db, "PING_IDLE_SECONDS", 0.0)
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        assert len(pings) == 2
    finally:
        engine.dispose()


def test_a_token_read_on_a_lost_connection_is_made_again_on_a_new_one(pg_engine: Engine) -> None:
    # The token reads' connections are not pinged at checkout (a round trip on every
    # request): after PostgreSQL lost them (a restart), the next read is made again on a new
    # connection instead of failing the request; an error that is not a lost connection is
    # raised as before.
    engine = make_engine(pg_engine.url.render_as_string(hide_password=False))
    try:
        pids = set()
        for _ in range(2):  # both of the pool's kept connections opened
            with read_connection(engine) as first, read_connection(engine) as second:
                pids |= {first.first("SELECT pg_backend_pid()"), second.first("SELECT 1")}
        with pg_engine.connect() as admin:  # every connection of the readers' pool lost
            admin.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        for _ in range(3):
            with read_connection(engine) as reader:
                assert reader.first("SELECT 1 + 1") == (2,)
        with pytest.raises(sa.exc.ProgrammingError), read_connection(engine) as reader:
            reader.first("SELECT no_such_column FROM findings")
    finally:
        engine.dispose()


def test_the_drivers_read_leaves_no_transaction_and_the_writers_pool_transactional(
    db_url: str,
) -> None:
    # Every request reads its token this way: one round trip, no BEGIN and COMMIT around it
    # on PostgreSQL. A writer's transaction after it is still one (a rollback undoes what it
    # wrote), on the one connection the engine's pool holds.
    engine = make_engine(db_url, pool_size=1, max_overflow=0)
    count = "SELECT count(*) FROM calendar_loads WHERE year = 2032"
    try:
        for _ in range(3):
            with read_connection(engine) as reader:
                assert reader.first(count) == (0,)
                driver = reader._driver
                if engine.dialect.name == "postgresql":
                    status = driver.info.transaction_status
                    assert status == type(status).IDLE  # nothing open, nothing to commit
                else:
                    assert not driver.in_transaction
        with engine.connect() as conn:
            conn.exec_driver_sql(
                "INSERT INTO calendar_loads (year, source, body, loaded_at, loaded_by) "
                "VALUES (2032, 'x', '{}', '2026-01-01 00:00:00+00', 't')"
            )
            conn.rollback()
        with read_connection(engine) as reader:
            assert reader.first(count) == (0,)
    finally:
        engine.dispose()
    if engine.dialect.name == "postgresql":  # the reads' own pool goes with the engine
        assert engine.__dict__["_slamon_reader"].pool.checkedin() == 0


def test_a_read_on_sqlite_keeps_nothing_it_wrote(tmp_path: object) -> None:
    # SQLite has no read-only transaction: its reads end by rollback.
    engine = make_engine(f"sqlite:///{tmp_path}/read.db")
    ensure_schema(engine)
    count = sa.text("SELECT count(*) FROM calendar_loads WHERE year = 2031")
    with read_scope(engine) as session:
        session.execute(
            sa.text(
                "INSERT INTO calendar_loads (year, source, body, loaded_at, loaded_by) "
                "VALUES (2031, 'x', '{}', '2026-01-01 00:00:00.000000', 't')"
            )
        )
        assert session.execute(count).scalar() == 1
    with read_scope(engine) as session:
        assert session.execute(count).scalar() == 0
    engine.dispose()


def test_the_migrations_build_the_schema_the_models_declare(engine: Engine) -> None:
    # Every index and constraint the code declares, and none it dropped (an index left in
    # a model after its migration dropped it would come back with the next autogenerate).
    # The search grams' tables are the database's own (FTS5, or a GIN-indexed table).
    from alembic.autogenerate import compare_metadata
    from sqlmodel import SQLModel

    import monitor.models  # noqa: F401  (every table on the metadata)

    def grams(diff: tuple[Any, ...]) -> bool:
        return str(getattr(diff[1], "name", "")).startswith(("ticket_grams", "ix_ticket_grams"))

    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert [d for d in diffs if not (isinstance(d, tuple) and grams(d))] == []
