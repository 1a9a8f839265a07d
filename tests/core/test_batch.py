"""Batches: the cycle collector's pause, rows written by the driver, running totals added."""

from __future__ import annotations

import gc
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session, SQLModel

from monitor.breaches.models import Finding
from monitor.core.batch import (
    BULK_FROM,
    COPY_TYPES,
    UPSERT_PAGE,
    Part,
    add_rows,
    as_loaded,
    bulk_rows,
    collector_paused,
    copy_type_of,
    draw_ids,
    insert_returning_ids,
    insert_rows,
    insert_together,
    unplanned,
)
from monitor.metrics.models import MetricTotal
from monitor.sla.vocab import TicketStatus
from monitor.tickets.models import Ticket


def test_the_collector_resumes_when_the_last_batch_ends() -> None:
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_a_collector_paused_by_someone_else_stays_paused() -> None:
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_failing_batch_resumes_the_collector() -> None:
    with pytest.raises(ValueError), collector_paused():
        raise ValueError("boom")
    assert gc.isenabled()


def _ticket_rows(prefix: str, count: int) -> list[dict[str, Any]]:
    at = datetime(2026, 3, 1, 1, 2, 3, 456789, tzinfo=UTC)
    return [
        {
            "pool": "pool1",
            "external_id": f"{prefix}-{i}",
            "severity": "major",
            "current_severity": "major",
            "title": f"核心交换机故障 {i}",
            "description": "" if i % 2 else "光模块\t更换\n完成 \\ 反斜杠",
            "source": "monitoring",
            "units": ["市大数据局"] if i % 3 else [],
            "systems": [],
            "policy_version": "2022",
            "status": TicketStatus.RESOLVED if i % 2 else TicketStatus.OPEN,
            "reported_at": at + timedelta(minutes=i),
            "created_at": at,
            "updated_at": at.replace(microsecond=0) if i % 2 else at,
            "created_by": "导入",
        }
        for i in range(count)
    ]


@pytest.mark.parametrize("count", [1, 2, BULK_FROM - 1, BULK_FROM + 5])
def test_rows_written_in_bulk_read_back_as_rows_written_by_sqlalchemy(
    session: Session, count: int
) -> None:
    # A batch goes in by the driver (COPY on PostgreSQL from BULK_FROM rows on, with ids drawn
    # from the sequence; on SQLite every batch, a single row too): what is read back must be
    # what SQLAlchemy's own INSERT writes (JSON lists, enums, instants, tabs, \).
    table = Ticket.__table__  # type: ignore[attr-defined]
    bulk_ids = insert_returning_ids(session, table, _ticket_rows("B", count))
    insert = sa.insert(table).returning(table.c.id)
    single_ids = [
        session.connection().execute(insert, row).scalar_one() for row in _ticket_rows("S", count)
    ]
    assert len(set(bulk_ids + single_ids)) == 2 * count

    def read(ids: list[int], statement: Any) -> list[tuple[Any, ...]]:
        by_id = {row[0]: row for row in session.execute(statement, {"ids": ids}).all()}
        return [tuple(by_id[i])[2:] for i in ids]  # without id and pool

    typed = sa.select(table).where(table.c.id.in_(sa.bindparam("ids", expanding=True)))
    # As stored, without SQLAlchemy's conversions: SQLite compares instants as this text.
    raw = sa.text("SELECT * FROM tickets WHERE id IN :ids").bindparams(
        sa.bindparam("ids", expanding=True)
    )
    for statement in (typed, raw):
        bulk, single = read(bulk_ids, statement), read(single_ids, statement)
        assert [r[0] for r in bulk] == [f"B-{i}" for i in range(count)]
        assert [r[1:] for r in bulk] == [r[1:] for r in single]


@pytest.mark.parametrize("count", [2, BULK_FROM + 5])
def test_tables_inserted_together_hold_their_rows_and_name_each_others(
    session: Session, count: int
) -> None:
    # A new ticket's tables go in together (on PostgreSQL a few rows of each by one
    # statement, larger parts each by its own): a part may name rows another part inserts
    # (a finding its ticket), each returning part gets its new ids in its rows' order, and
    # a row naming no row at all is refused as a single insert is, with nothing kept.
    tickets = Ticket.__table__  # type: ignore[attr-defined]
    findings = Finding.__table__  # type: ignore[attr-defined]
    drawn = draw_ids(session, tickets, count)
    named = [{"id": i, **row} for i, row in zip(drawn, _ticket_rows("N", count), strict=True)]
    at = datetime(2026, 3, 1, tzinfo=UTC)
    found = [
        {
            "kind": "late_entry",
            "key": f"k{i}",
            "ticket_id": i,
            "pool": "pool1",
            "detail": "迟报",
            "opened_at": at,
            "closed_at": None,
        }
        for i in drawn
    ]
    kept, new, none = insert_together(
        session,
        [
            Part(tickets, named),
            Part(tickets, _ticket_rows("R", count), returning=True),
            Part(findings, found),
        ],
    )
    assert kept == [] and none == [] and len(new) == count
    by_id = dict(session.execute(sa.select(tickets.c.id, tickets.c.external_id)).all())
    assert [by_id[i] for i in drawn] == [f"N-{k}" for k in range(count)]
    assert [by_id[i] for i in new] == [f"R-{k}" for k in range(count)]
    stored = session.execute(sa.select(findings.c.ticket_id, findings.c.opened_at)).all()
    assert sorted(stored) == [(i, at) for i in drawn]
    session.commit()
    orphan = [{**found[0], "key": "orphan", "ticket_id": max(new) + 1000}]
    with pytest.raises(sa.exc.IntegrityError):
        insert_together(session, [Part(tickets, _ticket_rows("X", 2)), Part(findings, orphan)])
    session.rollback()
    assert session.execute(sa.select(sa.func.count()).select_from(tickets)).scalar() == 2 * count


def test_every_column_type_has_its_binary_copy_form() -> None:
    # A batch of BULK_FROM rows or more goes into PostgreSQL by a binary COPY, each column
    # written as COPY_TYPES says: a type without one would fail the first import using it.
    import monitor.models  # noqa: F401 - every table

    kinds = {copy_type_of(c.type) for t in SQLModel.metadata.sorted_tables for c in t.columns}
    assert kinds <= set(COPY_TYPES), kinds - set(COPY_TYPES)


def test_a_value_longer_than_its_column_is_never_stored_cut(session: Session) -> None:
    # PostgreSQL refuses a request's few rows as it refuses SQLAlchemy's own INSERT; SQLite
    # keeps text whole, whatever the declared length.
    table = Ticket.__table__  # type: ignore[attr-defined]
    rows = _ticket_rows("LONG", 2)
    rows[1]["title"] = "长" * 501  # the column holds 500
    if session.get_bind().dialect.name == "postgresql":
        with pytest.raises(sa.exc.DataError, match="too long"):
            insert_returning_ids(session, table, rows)
        return
    ids = insert_returning_ids(session, table, rows)
    stored = session.execute(sa.select(table.c.title).where(table.c.id == ids[1])).scalar_one()
    assert stored == "长" * 501


def test_an_integer_out_of_its_columns_range_is_never_stored_wrapped(session: Session) -> None:
    # A batch goes into PostgreSQL by a binary COPY, whose driver writes only an integer's
    # low 4 bytes: 2**32 + 5 would be stored as 5. It is refused, as an INSERT refuses it;
    # SQLite keeps integers of 8 bytes whole.
    table = Ticket.__table__  # type: ignore[attr-defined]
    big = 2**32 + 5
    rows = [{"id": big + i, **row} for i, row in enumerate(_ticket_rows("BIG", BULK_FROM))]
    if session.get_bind().dialect.name == "postgresql":
        with pytest.raises(ValueError, match="out of range"):
            bulk_rows(session, table, rows)
        return
    bulk_rows(session, table, rows)
    stored = session.execute(sa.select(sa.func.min(table.c.id))).scalar_one()
    assert stored == big


def test_a_naive_instant_is_refused_in_bulk_as_one_at_a_time(session: Session) -> None:
    rows = _ticket_rows("N", BULK_FROM)
    rows[-1]["created_at"] = datetime(2026, 3, 1)  # noqa: DTZ001 - the point of the test
    with pytest.raises((ValueError, sa.exc.StatementError), match="naive datetime refused"):
        insert_rows(session, Ticket.__table__, rows)  # type: ignore[attr-defined]


def test_a_row_inserted_in_bulk_is_an_orm_object_whose_changes_are_written(
    session: Session,
) -> None:
    table = Ticket.__table__  # type: ignore[attr-defined]
    rows = _ticket_rows("L", 2)
    ids = insert_returning_ids(session, table, rows)
    first, second = as_loaded(
        session, Ticket, [{"id": i, **r} for i, r in zip(ids, rows, strict=True)]
    )
    assert first.id == ids[0] and first.units == [] and second.units == ["市大数据局"]
    updates: list[str] = []
    sa.event.listen(session.get_bind(), "before_cursor_execute", lambda *a: updates.append(a[2]))
    second.title = second.title  # the same value: nothing to write
    first.status = TicketStatus.CLOSED
    session.flush()
    assert [s.split()[0] for s in updates] == ["UPDATE"]
    assert session.get(Ticket, ids[0]) is first
    read = session.execute(sa.select(table.c.status).where(table.c.id == ids[0])).scalar_one()
    assert read == "closed"


def test_rows_added_to_totals_add_where_the_key_exists_and_insert_where_not(
    session: Session,
) -> None:
    # More rows than one page of PostgreSQL's many-VALUES upsert.
    table = MetricTotal.__table__  # type: ignore[attr-defined]
    keys = [("t", f'["k{i}"]') for i in range(UPSERT_PAGE + 7)]
    add_rows(
        session,
        table,
        [{"family": f, "labels": k, "count": 1, "total": 0.5} for f, k in keys],
        key=("family", "labels"),
    )
    again = [*keys[1:], ("t", '["new"]')]
    add_rows(
        session,
        table,
        [{"family": f, "labels": k, "count": 2, "total": 1.25} for f, k in again],
        key=("family", "labels"),
    )
    stored = {
        (r.family, r.labels): (r.count, r.total)
        for r in session.exec(sa.select(MetricTotal)).scalars()
    }
    assert stored == {
        keys[0]: (1, 0.5),
        **{k: (3, 1.75) for k in keys[1:]},
        ("t", '["new"]'): (2, 1.25),
    }


def test_an_unplanned_read_is_planned_afresh_each_time_on_postgresql(session: Session) -> None:
    """A read an import repeats while its tables grow (the duplicate-id read of each chunk)
    is never prepared on PostgreSQL, so each run is planned by the tables as they are then,
    where the same statement run as usual is prepared by its sixth run and may keep one plan.
    Its rows are those SQLAlchemy reads, on both databases."""
    tickets = Ticket.__table__  # type: ignore[attr-defined]
    insert_rows(session, tickets, _ticket_rows("UNPLANNED", 3))
    read = sa.select(tickets.c.external_id).where(
        tickets.c.external_id.in_(sa.bindparam("ids", expanding=True))
    )
    wanted = {"ids": ["UNPLANNED-0", "UNPLANNED-2", "ELSEWHERE"]}
    for _ in range(8):
        assert sorted(r[0] for r in unplanned(session, read, wanted)) == [
            "UNPLANNED-0",
            "UNPLANNED-2",
        ]
    as_usual = read.where(tickets.c.pool == "pool1")
    for _ in range(8):
        session.connection().execute(as_usual, wanted).all()
    if session.get_bind().dialect.name == "postgresql":
        prepared = session.connection().execute(
            sa.text("SELECT statement FROM pg_prepared_statements WHERE statement LIKE :like"),
            {"like": "%tickets.external_id IN%"},
        )
        assert [("tickets.pool" in s) for (s,) in prepared] == [True]  # only the usual one
