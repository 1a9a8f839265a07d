"""The benchmark history is what the product itself writes: the bulk writer against a real
import of the same tickets, row for row and hash for hash."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel, select

from bench.history import IMPORTER, NOW, SEED, write_history, write_import_file
from monitor.audit.verify import verify
from monitor.core.clock import FixedClock
from monitor.core.db import make_engine, session_scope
from monitor.core.settings import Settings
from monitor.judging.flow import write_flow
from monitor.metrics.totals import reconcile
from monitor.sla.service import load_context
from monitor.tickets import importer
from monitor.tickets.importer import import_rows, parse_rows, read_rows
from monitor.tickets.models import Ticket
from tests.conftest import PG_URL, _truncate

COUNT = 400


def dump(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in primary-key order."""
    out = {}
    with engine.connect() as conn:
        for table in SQLModel.metadata.sorted_tables:
            key = [c for c in table.primary_key.columns] or list(table.columns)
            out[table.name] = [tuple(r) for r in conn.execute(sa.select(table).order_by(*key))]
    return out


def _second(engine: Engine, request: pytest.FixtureRequest, tmp_path: Path) -> Engine:
    """An empty database to write the same tickets again: on PostgreSQL the test's own,
    emptied (its rows were dumped), on SQLite a fresh file."""
    if engine.dialect.name == "postgresql":
        _truncate(request.getfixturevalue("pg_engine"))
        return engine
    path = tmp_path / "second.db"
    shutil.copy(request.getfixturevalue("sqlite_template"), path)
    return make_engine(f"sqlite:///{path}")


def test_bulk_history_equals_a_real_import(
    engine: Engine,
    settings: Settings,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The generator loads explicit ids and moves the sequences: the owner's work, as a restore.
    postgres = engine.dialect.name == "postgresql"
    owner = make_engine(PG_URL) if postgres else engine
    counts = write_history(owner, settings, COUNT, batch=150)
    if postgres:
        owner.dispose()
    bulk = dump(engine)
    assert counts["tickets"] == COUNT
    with session_scope(engine) as session:
        assert verify(session).ok
        statuses = {t.status for t in session.exec(select(Ticket)).all()}
    # The history has what a province's has: open and closed tickets, both pools, every
    # severity, corrections, reopenings and breaches.
    assert {"open", "closed"} <= statuses
    assert {r[1] for r in bulk["tickets"]} == {"pool1", "pool2"}
    event_types = {r[4] for r in bulk["events"]}
    assert {"correction", "reopened", "user_notified", "arrived", "report_submitted"} <= event_types
    assert bulk["breaches"] and bulk["findings"]

    # Judging every ticket again at the same instant changes nothing.
    clock = FixedClock(NOW)
    with session_scope(engine) as session:
        flow = write_flow(session, load_context(session, settings, clock))
        with flow as writes:
            for ticket in session.exec(select(Ticket)).all():
                writes.rejudge(ticket, NOW)
    assert dump(engine) == bulk

    # The product's own import of the same tickets writes the very same rows: chunks made by
    # two worker processes, written here.
    second = _second(engine, request, tmp_path)
    source = tmp_path / "history.json"
    write_import_file(source, SEED, COUNT)
    monkeypatch.setattr(importer, "CHUNK", 150)
    with session_scope(second) as session:
        flow = write_flow(session, load_context(session, settings, clock))
        with flow as writes:
            import_rows(writes, read_rows(source), IMPORTER, workers=2)
    imported = dump(second)
    for table, rows in bulk.items():
        assert imported[table] == rows, table


@pytest.mark.parametrize("workers", [0, 2])
def test_a_chunked_import_equals_tickets_written_one_at_a_time(
    workers: int,
    engine: Engine,
    settings: Settings,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An import writes each table once per chunk, its chunks made in this process or by
    worker processes; the rows and the audit chain are the ones `create_ticket` writes for
    the same tickets one by one, hash for hash."""
    count, clock = 130, FixedClock(NOW)
    source = tmp_path / "history.json"
    write_import_file(source, SEED, count)
    rows = read_rows(source)
    with session_scope(engine) as session:
        ctx = load_context(session, settings, clock)
        with write_flow(session, ctx) as writes:
            parsed, problems = parse_rows(rows, ctx)
            assert not problems
            for _, ticket_in in parsed:
                writes.create_ticket(ticket_in, IMPORTER)
    one_by_one = dump(engine)
    assert len(one_by_one["tickets"]) == count
    assert one_by_one["breaches"] and one_by_one["findings"]

    second = _second(engine, request, tmp_path)
    monkeypatch.setattr(importer, "CHUNK", 50)  # three chunks, the last one short
    with (
        session_scope(second) as session,
        write_flow(session, load_context(session, settings, clock)) as writes,
    ):
        summary = import_rows(writes, rows, IMPORTER, workers=workers)
    assert summary.tickets == count
    chunked = dump(second)
    for table in ("tickets", "events", "target_states", "breaches", "findings", "audit_log"):
        assert chunked[table] == one_by_one[table], table
    assert chunked == one_by_one
    with session_scope(second) as session:
        assert verify(session).ok
        # The running totals (breaches counted as a batch's end inserts them) are what the
        # rows say: both ways go through the same batch code, so only this shows a lost count.
        assert reconcile(session) == 0
