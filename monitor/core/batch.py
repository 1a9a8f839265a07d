"""Work that builds many objects or rows at once: the year-end feed, large reports, imports."""

from __future__ import annotations

import enum
import functools
import gc
import json
import operator
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import psycopg
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session, instrumentation, make_transient_to_detached
from sqlalchemy.orm.util import identity_key

from monitor.core.db import driver_errors, driver_of, stored_instant

T = TypeVar("T")

_lock = threading.Lock()
_depth = 0
_was_enabled = True


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cycle collector while a batch builds objects that live until it ends.

    The collector's full passes walk every live object, and a batch that keeps hundreds of
    thousands of them (events, judgements, the feed's models) triggers pass after pass: at 1 M
    tickets that was 40 % of the year-end score's CPU time. Reference counting still frees
    what the batch drops; cycles wait for the next pass after it. Process-wide, so nested and
    concurrent batches resume the collector only when the last one ends."""
    global _depth, _was_enabled
    with _lock:
        if _depth == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _was_enabled:
                gc.enable()


def insert_rows(session: Session, table: sa.Table, rows: list[dict[str, Any]] | Bound) -> None:
    """Insert rows with one statement (as dicts, or bound ahead, `bind`)."""
    if isinstance(rows, Bound):
        insert_bound(session, table, rows)
    elif rows:
        bulk_rows(session, table, rows)


# From this many rows on, a batch goes in by PostgreSQL's COPY (a many-VALUES INSERT is a new
# statement text per batch size, which the driver parsed placeholder by placeholder: 3 s of a
# 5,000-ticket import); fewer rows by one INSERT of that many VALUES (one round trip; a
# statement text per row count and column set, which the driver caches and prepares once it
# has seen one often, keeping the 100 it used last; sent by a raw cursor, whose `$k` marks
# the driver does not parse: it parses a `%s` statement of more than 50 parameters anew at
# every execution, a POST's events, states and audit records, 4 % of a PostgreSQL server's
# CPU under POSTs; an INSERT of arrays by `unnest` instead cost more, in the driver's
# dumping of the lists, than it saved). Not the
# driver's executemany: its pipeline polls the socket while it waits for the answer, and cost
# 2.4x the CPU of a plain INSERT of the same 4 rows. SQLite takes every batch by one
# executemany (a loop in C). Nothing
# goes through SQLAlchemy's statement machinery, which cost more than the database's own work
# for a request's few rows and a fifth of an import; values are converted exactly as the ORM
# would bind them (a test compares what each way stores).
BULK_FROM = 20


def on_sqlite(session: Session) -> bool:
    """Whether the session's database is SQLite (a driver statement's SQL differs)."""
    return session.get_bind().dialect.name == "sqlite"


def insert_returning_ids(
    session: Session, table: sa.Table, rows: list[dict[str, Any]]
) -> list[int]:
    """Insert rows and return their new ids in the rows' order. A batch draws its ids first
    (PostgreSQL: from the table's sequence, in one statement; SQLite: after the largest,
    which is what SQLite itself would give, the write lock being held since BEGIN IMMEDIATE)
    and goes in by `bulk_rows`. A single row (any database) and a few rows on PostgreSQL go
    in by the driver's INSERT: its id is SQLite's row id, or PostgreSQL's RETURNING id."""
    if len(rows) >= BULK_FROM or (on_sqlite(session) and len(rows) > 1):
        ids = _draw_ids(session, table, len(rows))
        bulk_rows(session, table, [{"id": i, **row} for i, row in zip(ids, rows, strict=True)])
        return ids
    return _insert(session, table, rows, returning=True)


def _core(session: Session) -> sa.Connection:
    """The session's connection, in its transaction. These statements go to it directly: a
    statement through the session first flushes whatever the session holds changed, and an
    import's session holds hundreds of tickets (1.3 s of a 20,000-ticket import). Rows
    written here refer only to rows already in the database."""
    return session.connection()


def driver_rows(session: Session, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """The rows of a statement (parameters marked `?`) run by the driver in the session's
    transaction: for the few small statements every write runs (its locks, the chain's
    head, a POST's duplicate-id read), SQLAlchemy's execution cost more than the statement
    (about 55 µs more each on PostgreSQL, 20 µs on SQLite, where the read itself takes 1 µs).
    A driver's error is raised as SQLAlchemy raises it (e.g. a lock not had within
    `lock_timeout` as `OperationalError`), so callers and the API's handlers see one kind."""
    text = sql if on_sqlite(session) else _driver_text(sql)
    with driver_errors(session, text) as driver:
        return list(driver.execute(text, params).fetchall())


@functools.lru_cache(maxsize=256)
def _driver_text(sql: str) -> str:
    """A statement's `?` marks as PostgreSQL's driver writes them."""
    return sql.replace("%", "%%").replace("?", "%s")


def unplanned(session: Session, statement: sa.Executable, params: dict[str, Any]) -> list[Any]:
    """The rows of a read that PostgreSQL plans at each execution, by the tables as they are
    then. The driver prepares a statement it has run five times, and PostgreSQL may keep
    one plan for it from then on: in an import, which grows its tables many times over, the
    duplicate-id read of each chunk kept the plan its sixth chunk got, a scan of the whole
    tickets table (a 100,000-ticket import into a new database took 149 s, then 77 s).
    SQLite plans by its indexes, not by sizes: its rows come as SQLAlchemy reads them."""
    connection = _core(session)
    if on_sqlite(session):
        return list(connection.execute(statement, params).all())
    driver = driver_of(session)
    threshold, driver.prepare_threshold = driver.prepare_threshold, None  # never prepared
    try:
        return list(connection.execute(statement, params).all())
    finally:
        driver.prepare_threshold = threshold


def draw_ids(session: Session, table: sa.Table, count: int) -> list[int]:
    """`count` new ids of the table, in order, for rows that `insert_rows` then writes in
    this transaction: for rows that must name each other's ids before any is inserted."""
    return _draw_ids(session, table, count)


def _draw_ids(session: Session, table: sa.Table, count: int) -> list[int]:
    if not on_sqlite(session):
        # By the driver: SQLAlchemy's result machinery took 4 % of an import to hand back
        # the ids one row at a time.
        return [row[0] for row in driver_rows(session, _DRAW_IDS, table.name, count)]
    sql = f'SELECT max(id) FROM "{table.name}"'
    with driver_errors(session, sql) as driver:
        last = driver.execute(sql).fetchone()[0] or 0
    return list(range(last + 1, last + 1 + count))


def ids_free(session: Session, table: sa.Table, ids: list[int]) -> bool:
    """Whether no row of the table has an id among `ids` (a range `core/db.reserve_ids`
    handed out), read in the session's write transaction: once it holds the lock, none can
    be taken."""
    sql = f'SELECT 1 FROM "{table.name}" WHERE id >= ? AND id <= ? LIMIT 1'
    return not ids or not driver_rows(session, sql, ids[0], ids[-1])


# The sequence is looked up once (OFFSET 0 keeps the planner from folding the lookup into
# every row): looked up for each id, 2,000 ids took PostgreSQL 9.2–9.4 ms, now 0.5–1.0 ms.
_DRAW_IDS = (
    "SELECT nextval(s) FROM (SELECT pg_get_serial_sequence(?, 'id')::regclass AS s OFFSET 0)"
    " AS q, generate_series(1, ?)"
)


def _insert(
    session: Session, table: sa.Table, rows: list[dict[str, Any]], *, returning: bool
) -> list[int]:
    """A few rows by the driver's INSERT; their ids in order when `returning`."""
    postgres = not on_sqlite(session)
    if not postgres:
        sql, values = _plan(table, tuple(rows[0]), "insert", postgres=False)
        tuples = [values(row) for row in rows]
        with driver_errors(session, sql) as driver:
            if not returning:
                driver.executemany(sql, tuples)
                return []
            return [int(driver.execute(sql, t).lastrowid) for t in tuples]  # row ids
    kind = f"insert {len(rows)} returning" if returning else f"insert {len(rows)}"
    sql, values = _plan(table, tuple(rows[0]), kind, postgres=True)
    params = [value for row in rows for value in values(row)]
    with driver_errors(session, sql) as driver, psycopg.RawCursor(driver) as cursor:
        cursor.execute(sql, params)
        # The sequence gives each row its id as the INSERT reaches it, in VALUES order, so
        # the ids in ascending order are the rows' order, whatever order RETURNING lists them.
        return sorted(row[0] for row in cursor.fetchall()) if returning else []


@dataclass
class Part:
    """One table's rows for `insert_together`; with `returning`, their new ids are wanted
    (the rows carry none)."""

    table: sa.Table
    rows: list[dict[str, Any]] | Bound
    returning: bool = False


def insert_together(session: Session, parts: Sequence[Part]) -> list[list[int]]:
    """Several tables' rows, each part as `insert_rows` (or, `returning`,
    `insert_returning_ids`) writes it; the new ids of each part (empty where not
    `returning`). On PostgreSQL, when every part is a few dict rows (fewer than
    `BULK_FROM`), all go in by **one** statement, each part an `INSERT` in its `WITH`
    (PostgreSQL runs each once, whether the statement reads it or not, and checks foreign
    keys when the whole statement ends, so a part may name a row another part inserts): one
    round trip instead of one a table, a new ticket's four or five tables on every
    `POST /tickets`."""
    live = [part for part in parts if len(part.rows)]
    if (
        on_sqlite(session)
        or len(live) < 2
        or any(isinstance(p.rows, Bound) or len(p.rows) >= BULK_FROM for p in live)
    ):
        return [_insert_part(session, part) for part in parts]
    rows = [cast(list[dict[str, Any]], part.rows) for part in live]
    key = tuple(
        (part.table, tuple(r[0]), len(r), part.returning)
        for part, r in zip(live, rows, strict=True)
    )
    sql, binders = _together(key)
    params = [v for values, r in zip(binders, rows, strict=True) for row in r for v in values(row)]
    with driver_errors(session, sql) as driver, psycopg.RawCursor(driver) as cursor:
        cursor.execute(sql, params)
        found = cursor.fetchall()
    ids: dict[int, list[int]] = {k: [] for k in range(len(live))}
    for k, new_id in found:
        ids[k].append(new_id)
    # As `_insert`: the sequence numbers a part's rows in VALUES order.
    by_part = {id(part): sorted(ids[k]) for k, part in enumerate(live)}
    return [by_part.get(id(part), []) for part in parts]


def _insert_part(session: Session, part: Part) -> list[int]:
    if part.returning:
        assert not isinstance(part.rows, Bound)
        return insert_returning_ids(session, part.table, part.rows) if part.rows else []
    insert_rows(session, part.table, part.rows)
    return []


_Together = tuple[tuple[sa.Table, tuple[str, ...], int, bool], ...]
_PARAMETER = re.compile(r"\$(\d+)")


def _renumbered(start: int, mark: re.Match[str]) -> str:
    return f"${int(mark[1]) + start}"


# (Kept for the combinations of row counts met last: a server meets many over time.)
@functools.lru_cache(maxsize=256)
def _together(key: _Together) -> tuple[str, list[Callable[[dict[str, Any]], list[Any]]]]:
    """`insert_together`'s statement for these parts (table, columns, row count, returning)
    and each part's binding: parameters numbered on from one part to the next."""
    withs, reads, binders, start = [], [], [], 0
    for k, (table, names, count, returning) in enumerate(key):
        kind = f"insert {count}" + (" returning" if returning else "")
        insert, values = _plan(table, names, kind, postgres=True)
        # (its own parameters `$1…`, numbered on after the parts before it)
        insert = _PARAMETER.sub(functools.partial(_renumbered, start), insert)
        withs.append(f"p{k} AS ({insert})")
        if returning:
            reads.append(f"SELECT {k}, id FROM p{k}")
        binders.append(values)
        start += count * len(names)
    read = " UNION ALL ".join(reads) or "SELECT 0, 0 WHERE false"
    return f"WITH {', '.join(withs)} {read}", binders


@dataclass
class Bound:
    """Rows of one table bound ahead of their insert: each row's values in `names` order,
    converted as `_plan` converts them for the database (`bind`). An import's worker
    processes bind the rows they make, so that the writer only sends them: converting them
    there was a sixth of its time, and a row of strings is cheaper to hand over than one of
    instants."""

    names: tuple[str, ...]
    rows: list[list[Any]]

    def __len__(self) -> int:
        return len(self.rows)


def bind(table: sa.Table, rows: list[dict[str, Any]], *, postgres: bool) -> Bound:
    """Rows (each with the same columns) bound for `insert_bound`."""
    names = tuple(rows[0]) if rows else ()
    _, values = _plan(table, names, "copy" if postgres else "insert", postgres=postgres)
    return Bound(names, [values(row) for row in rows])


def insert_bound(
    session: Session, table: sa.Table, bound: Bound, ids: Sequence[int] | None = None
) -> None:
    """Insert bound rows (`bind`, for this database), with `ids` their ids when given: as
    `insert_rows` writes them, by one statement."""
    rows, names = bound.rows, bound.names
    if not rows:
        return
    if ids is not None:
        names = ("id", *names)
        for row, row_id in zip(rows, ids, strict=True):
            row.insert(0, row_id)
    if on_sqlite(session):
        sql, _ = _plan(table, names, "insert", postgres=False)
        with driver_errors(session, sql) as driver:
            driver.executemany(sql, rows)
    elif len(rows) >= BULK_FROM:
        sql, _ = _plan(table, names, "copy", postgres=True)
        with (
            driver_errors(session, sql) as driver,
            driver.cursor() as cursor,
            cursor.copy(sql) as copy,
        ):
            copy.set_types(_copy_types(table, names))
            for row in rows:
                copy.write_row(row)
    else:
        sql, _ = _plan(table, names, f"insert {len(rows)}", postgres=True)
        params = [value for row in rows for value in row]
        with driver_errors(session, sql) as driver, psycopg.RawCursor(driver) as cursor:
            cursor.execute(sql, params)


def update_rows(
    session: Session, table: sa.Table, rows: list[dict[str, Any]], key: tuple[str, ...]
) -> None:
    """Set each row's columns other than `key` on the stored row its `key` names: one
    statement a row, by the driver (the statement made once per set of columns; not
    PostgreSQL's executemany, whose pipeline polls while it waits)."""
    postgres = not on_sqlite(session)
    for row in rows:
        names = (*(n for n in row if n not in key), *key)
        sql, values = _plan(table, names, f"update {len(key)}", postgres=postgres)
        with driver_errors(session, sql) as driver:
            driver.execute(sql, values(row))


def expire_loaded(session: Session, model: type[Any], keys: list[Any]) -> None:
    """Rows about to be rewritten by Core statements: an ORM copy of one that a read in this
    session loaded is expired, so its next use reads what they wrote (a deleted row's copy
    then raises `ObjectDeletedError`, as after `session.delete`)."""
    for key in keys:
        loaded = session.identity_map.get(identity_key(model, key))
        if loaded is not None:
            session.expire(loaded)


# An upsert cannot go by COPY: larger batches go in pages of this many rows.
UPSERT_PAGE = 100


def add_rows(
    session: Session, table: sa.Table, rows: list[dict[str, Any]], key: tuple[str, ...]
) -> None:
    """Insert rows, or where a row with the same `key` exists, add the new row's other
    columns to its own (running totals). By the driver: SQLite by one executemany,
    PostgreSQL by one INSERT of many VALUES a page (rows must not repeat a key)."""
    if not rows:
        return
    names = tuple(rows[0])
    added = ", ".join(
        f'"{n}" = "{table.name}"."{n}" + excluded."{n}"' for n in names if n not in key
    )
    conflict = f" ON CONFLICT ({', '.join(key)}) DO UPDATE SET {added}"
    if on_sqlite(session):
        sql, values = _plan(table, names, "insert", postgres=False)
        with driver_errors(session, sql) as driver:
            driver.executemany(sql + conflict, [values(row) for row in rows])
        return
    with (
        driver_errors(session, f"upsert {table.name}") as driver,
        psycopg.RawCursor(driver) as cursor,
    ):
        for at in range(0, len(rows), UPSERT_PAGE):
            page = rows[at : at + UPSERT_PAGE]
            sql, values = _plan(table, names, f"insert {len(page)}", postgres=True)
            cursor.execute(sql + conflict, [value for row in page for value in values(row)])


def rows_where(
    session: Session,
    table: sa.Table,
    names: tuple[str, ...],
    column: str,
    value: Any,
    order: str,
    limit: int | None = None,
) -> list[list[Any]]:
    """The `names` columns of the rows whose `column` equals `value`, ordered by `order` (the
    first `limit` of them), read by the driver in the session's transaction and converted as
    the ORM loads them (instants aware UTC, JSON parsed): SQLAlchemy's result machinery cost
    more than the read itself (60 % of an append to a ticket of 10,000 events)."""
    sql = f'SELECT {{columns}} FROM {{table}} WHERE "{column}" = ? ORDER BY "{order}"'
    return select_rows(
        session, table, names, sql if limit is None else f"{sql} LIMIT {int(limit)}", (value,)
    )


def select_rows(
    session: Session, table: sa.Table, names: tuple[str, ...], sql: str, params: Sequence[Any]
) -> list[list[Any]]:
    """The rows a driver statement reads from `table`, converted as `rows_where` converts
    them: `sql` names the columns `{columns}` (the `names`), the table `{table}`, and marks
    each parameter `?` (bound as given: `bound` converts a column's value first)."""
    postgres = not on_sqlite(session)
    key = (table, names, sql, postgres)
    plan = _READS.get(key)
    if plan is None:
        columns = ", ".join(f'"{n}"' for n in names)
        text = sql.format(columns=columns, table=f'"{table.name}"')
        if postgres:
            text = text.replace("%", "%%").replace("?", "%s")
        loads = [(i, c) for i, n in enumerate(names) if (c := _loader(table.c[n].type, postgres))]
        plan = _READS[key] = (text, loads)
    text, loads = plan
    with driver_errors(session, text) as driver:
        rows = [list(row) for row in driver.execute(text, tuple(params)).fetchall()]
    for i, load in loads:
        for row in rows:
            row[i] = load(row[i])
    return rows


def bound(session: Session, table: sa.Table, name: str, value: Any) -> Any:
    """A value for a driver statement's parameter compared with the column `name` of
    `table`, converted as the ORM binds that column (an instant as SQLite stores it)."""
    convert = _converter(table.c[name].type, not on_sqlite(session))
    return convert(value) if convert else value


_READS: dict[tuple[sa.Table, tuple[str, ...], str, bool], tuple[str, list[Any]]] = {}


def _loader(kind: sa.types.TypeEngine[Any], postgres: bool) -> Callable[[Any], Any] | None:
    """How the ORM loads a column's stored value, where it changes it: instants aware UTC
    (SQLite keeps UTC wall time as text), JSON parsed (SQLite keeps text; the PostgreSQL
    driver parses it itself)."""
    if isinstance(kind, sa.types.TypeDecorator) and isinstance(kind.impl, sa.DateTime):
        return stored_instant
    if isinstance(kind, sa.JSON) and not postgres:
        return _json_load
    return None


def _json_load(value: str | None) -> Any:
    if value == "[]":  # most events carry no evidence
        return []
    return None if value is None else json.loads(value)


def bulk_rows(session: Session, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """Rows (each with the same columns) into a table inside the session's transaction, by
    one statement: bound (`bind`) and inserted as bound rows are (`insert_bound`)."""
    insert_bound(session, table, bind(table, rows, postgres=not on_sqlite(session)))


@functools.lru_cache(maxsize=256)
def _copy_types(table: sa.Table, names: tuple[str, ...]) -> tuple[str, ...]:
    """How the driver writes each column in a binary COPY (`COPY_TYPES`)."""
    return tuple(COPY_TYPES[copy_type_of(table.c[n].type)] for n in names)


def copy_type_of(kind: sa.types.TypeEngine[Any]) -> str:
    """A column's type as PostgreSQL names it, without its length."""
    return kind.compile(dialect=postgresql.dialect()).split("(")[0]


# Each column type's binary form in a COPY. JSON goes as text: its binary form is its text,
# which the server parses (the driver's JSON type would write the text again as a JSON
# string). A type missing here fails `tests/core/test_batch.py`, not an import.
COPY_TYPES = {
    "VARCHAR": "text",
    "TEXT": "text",
    "JSON": "text",
    "INTEGER": "int4",
    "BIGINT": "int8",
    "FLOAT": "float8",
    "BOOLEAN": "bool",
    "DATE": "date",
    "TIMESTAMP WITH TIME ZONE": "timestamptz",
}


_Plan = tuple[str, Callable[[dict[str, Any]], list[Any]]]
_PLANS: dict[tuple[sa.Table, tuple[str, ...], str, bool], _Plan] = {}


def _plan(table: sa.Table, names: tuple[str, ...], kind: str, *, postgres: bool) -> _Plan:
    """The driver's statement for rows with these columns, and how a row's values are bound;
    made once per table, columns and `kind`: "copy", "insert" (one row's VALUES, for
    executemany), "insert N" (PostgreSQL: N rows' VALUES, its parameters numbered `$k` for a
    `psycopg.RawCursor`), optionally with " returning" their ids, or
    "update K" (the columns before the last K set on the row the last K name)."""
    found = _PLANS.get((table, names, kind, postgres))
    if found is not None:
        return found
    columns = ", ".join(f'"{n}"' for n in names)
    mark = "%s" if postgres else "?"
    if kind.startswith("update"):  # "update K": the last K names are the row's key
        keys = int(kind.split()[1])
        assign = ", ".join(f'"{n}" = {mark}' for n in names[:-keys])
        where = " AND ".join(f'"{n}" = {mark}' for n in names[-keys:])
        sql = f'UPDATE "{table.name}" SET {assign} WHERE {where}'
    elif kind == "copy":
        # Binary: the driver writes an instant or a number as the server keeps it. On an
        # event's columns text cost the driver 5.3 µs a row to write out (10 µs a row with
        # the server's parsing), binary 1.1 µs (4 µs).
        sql = f'COPY "{table.name}" ({columns}) FROM STDIN (FORMAT BINARY)'
    elif postgres:  # "insert N": numbered as the server numbers them, for a raw cursor
        count, width = int(kind.split()[1]), len(names)
        groups = (
            "(" + ", ".join(f"${k * width + i}" for i in range(1, width + 1)) + ")"
            for k in range(count)
        )
        sql = f'INSERT INTO "{table.name}" ({columns}) VALUES ' + ", ".join(groups)
        if kind.endswith(" returning"):
            sql += " RETURNING id"
    else:  # "insert": one row's VALUES, for SQLite's executemany
        group = "(" + ", ".join(mark for _ in names) + ")"
        sql = f'INSERT INTO "{table.name}" ({columns}) VALUES {group}'
    get = operator.itemgetter(*names) if len(names) > 1 else lambda row: (row[names[0]],)
    # Only the columns whose values the ORM would convert are touched.
    convert = [
        (i, c) for i, n in enumerate(names) if (c := _binding(table.c[n].type, kind, postgres))
    ]

    def values(row: dict[str, Any]) -> list[Any]:
        out = list(get(row))
        for i, c in convert:
            out[i] = c(out[i])
        return out

    found = _PLANS[(table, names, kind, postgres)] = (sql, values)
    return found


def _binding(
    column: sa.types.TypeEngine[Any], kind: str, postgres: bool
) -> Callable[[Any], Any] | None:
    """`_converter`, and in a binary COPY a check of the integers PostgreSQL keeps in 4
    bytes: the driver writes only their low 4 bytes (2**32 + 5 went in as 5)."""
    found = _converter(column, postgres)
    if found is None and kind == "copy" and copy_type_of(column) == "INTEGER":
        return _int4
    return found


def _converter(kind: sa.types.TypeEngine[Any], postgres: bool) -> Callable[[Any], Any] | None:
    """How the ORM binds a column's values, where it changes them: JSON as json.dumps text
    (None as JSON null; a `JsonText` as it is), instants aware (UTC wall time on SQLite),
    enums by value."""
    if isinstance(kind, sa.JSON):
        return _json
    if isinstance(kind, sa.types.TypeDecorator) and isinstance(kind.impl, sa.DateTime):
        return _aware if postgres else _sqlite_instant
    if isinstance(kind, sa.String):
        return _plain
    return None


class JsonText(str):
    """A JSON value its writer has already written as text (the audit log's canonical
    payload): stored as it is instead of parsed and serialized again."""

    __slots__ = ()


def _json(value: Any) -> str:
    if type(value) is JsonText:
        return value
    if not value and isinstance(value, list):  # most events carry no evidence
        return "[]"
    return json.dumps(value)


def _int4(value: int | None) -> int | None:
    """An integer for a 4-byte column, refused as the server refuses it when out of range."""
    if value is not None and not -(2**31) <= value < 2**31:
        raise ValueError(f"integer out of range: {value}")
    return value


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:  # refused, as the ORM does
        raise ValueError("naive datetime refused: every instant must carry its offset")
    return value


# An import writes the same few instants (now, the events' times) over and over.
@functools.lru_cache(maxsize=4096)
def _sqlite_instant(value: datetime | None) -> str | None:
    """As SQLAlchemy stores an instant on SQLite: its UTC wall time, to the microsecond."""
    if _aware(value) is None:
        return None
    assert value is not None
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


def as_loaded(session: Session | None, model: type[T], rows: list[dict[str, Any]]) -> list[T]:
    """ORM objects for rows just inserted by Core (every column given, the id included), in
    the session as if it had read them back: later changes to them are flushed as updates.
    Without a session, detached: for an answer made once its transaction has ended.
    Built as SQLAlchemy builds a loaded row, not field by field through SQLModel's
    constructor, which costs twenty times as much (0.2 ms a ticket)."""
    manager = instrumentation.manager_of_class(model)
    out = []
    for values in rows:
        obj = manager.new_instance()
        obj.__dict__.update(values)
        object.__setattr__(obj, "__pydantic_fields_set__", set(values))
        object.__setattr__(obj, "__pydantic_extra__", None)
        object.__setattr__(obj, "__pydantic_private__", None)
        make_transient_to_detached(obj)
        if session is not None:
            session.add(obj)
        out.append(obj)
    return out
