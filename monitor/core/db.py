"""Engine, sessions and schema upkeep for SQLite and PostgreSQL alike."""

from __future__ import annotations

import json
import os
import select
import sqlite3
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session

from monitor.core.grams import fts_document

if sys.platform != "win32":
    import fcntl  # the file lock `serve --workers` queues SQLite's writers on (none on Windows)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Stores aware instants as UTC and always hands back aware UTC, on both databases."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: every instant must carry its offset")
        value = value.astimezone(UTC)
        # SQLite has no zone type: keep the UTC wall time so text order is time order.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# How long a writer waits for another's lock by default before it answers 503.
BUSY_SECONDS = 30.0


def make_engine(
    url: str, *, busy_seconds: float = BUSY_SECONDS, bulk: bool = False, **kwargs: Any
) -> Engine:
    """An engine with the durability settings the product relies on. A writer waits
    `busy_seconds` for another's lock before the request answers 503: on SQLite every writer
    (its write lock); on PostgreSQL an API or web page's write (`limit_lock_waits`). `bulk`:
    for a command that writes one large transaction (an import), on SQLite (`BULK_PRAGMAS`)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": busy_seconds}, **kwargs)
        _tune_sqlite(engine, busy_seconds, database, BULK_PRAGMAS if bulk else ())
        return engine
    options = {LOCK_WAIT_MS: int(busy_seconds * 1000), **kwargs.pop("execution_options", {})}
    engine = sa.create_engine(url, execution_options=options, **kwargs)
    _ping_when_in_doubt(engine)
    return engine


# A pooled connection left unused this long is pinged before its next use.
PING_IDLE_SECONDS = 10.0
_USED = "slamon_used"


def _ping_when_in_doubt(engine: Engine) -> None:
    """Ping a PostgreSQL pool's connection at checkout only when it may be lost: when the
    server has said something on it since (a restart or `pg_terminate_backend` closes it
    with a last message, which a poll of its socket sees without a round trip), or when it
    has not been used for `PING_IDLE_SECONDS` (a peer that vanished says nothing). A lost
    one is replaced before the request uses it, as SQLAlchemy's `pool_pre_ping` does; a
    connection in steady use is not pinged, which `pool_pre_ping` did on every checkout: a
    round trip, one statement of a `POST /tickets`'s sixteen. (One whose peer vanished
    without closing it within those seconds of its last use fails its request with 503,
    the connection then leaving the pool.)"""
    dialect = engine.dialect

    def used(_driver: Any, record: Any, *_: Any) -> None:
        record.info[_USED] = time.monotonic()

    def checkout(driver: Any, record: Any, _proxy: Any) -> None:
        last = record.info.get(_USED)
        if last is not None and time.monotonic() - last < PING_IDLE_SECONDS:
            try:  # (poll: select refuses a descriptor numbered 1024 or more)
                poll = select.poll()
                poll.register(driver.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
                said = bool(poll.poll(0))
            except (OSError, ValueError, dialect.loaded_dbapi.Error):  # (closed: ping fails)
                said = True
            if not said:
                return
        try:
            dialect.do_ping(driver)
        except dialect.loaded_dbapi.Error as err:
            if dialect.is_disconnect(err, driver, None):
                raise sa.exc.DisconnectionError("the connection was lost") from err
            raise

    event.listen(engine, "connect", used)
    event.listen(engine, "checkin", used)
    event.listen(engine, "checkout", checkout)


# An execution option of the engine, so copies of it and its connections carry it too.
LOCK_WAIT_MS = "slamon_lock_wait_ms"


def limit_lock_waits(session: Session) -> None:
    """Let this transaction wait for another's lock at most the engine's busy seconds
    (PostgreSQL's `lock_timeout`, for this transaction only), as SQLite's writers wait for
    its write lock: an API write that meets an import holding the creation of tickets or
    the audit chain then answers 503 instead of holding its pooled connection until the
    import ends; and a web page's form, which then shows a Chinese page saying so. Each wait
    for a lock is bounded, not the transaction's sum. The CLI and the scheduler wait as long
    as it takes. (One statement more a write: about 70 µs, 35 µs of the client's CPU.)"""
    milliseconds = session.get_bind().get_execution_options().get(LOCK_WAIT_MS)
    if milliseconds is not None:  # (PostgreSQL: SQLite's engines have no such option)
        # By the driver: SQLAlchemy's execution cost 25 µs more than the statement.
        sql = f"SET LOCAL lock_timeout = {int(milliseconds)}"
        with driver_errors(session, sql) as driver:
            driver.execute(sql)


class _WriteQueue:
    """The SQLite writers of every server process, queued so the next is let in at once.
    Without it they wait in SQLite's busy handler, which sleeps between tries (up to 100 ms
    each), so a few concurrent writers spend most of their time asleep while the lock is free.

    A process's writers take turns on a lock of the process; the one whose turn it is then
    takes a file lock beside the database (`_FileTurn`), which the writers of the other
    server processes on the same file (`serve --workers`) take too. Both waits together last
    at most the busy timeout; then the write answers as SQLite's busy timeout does (503).
    Measured with two processes and 4 clients posting tickets: 986 and 1,054 events/s, p99
    27–29 ms; with SQLite's busy handler alone between the processes 679 and 934 events/s,
    p99 174–256 ms."""

    def __init__(self, busy_seconds: float, database: str | None) -> None:
        self.lock, self.busy_seconds = threading.Lock(), busy_seconds
        local = database and database != ":memory:" and sys.platform != "win32"
        self.file = _FileTurn(f"{database}-writers") if local else None  # (no flock on Windows)
        self.ranges = _Ranges(f"{database}-ids") if local else None

    def __enter__(self) -> None:
        deadline = time.monotonic() + self.busy_seconds
        if not self.lock.acquire(timeout=self.busy_seconds):
            raise busy_error()
        try:
            if self.file is not None and not self.file.acquire(deadline - time.monotonic()):
                raise busy_error()
        except BaseException:
            self.lock.release()
            raise

    def __exit__(self, *_: object) -> None:
        try:
            if self.file is not None:
                self.file.release()
        finally:
            self.lock.release()  # may be another thread than the one that entered (FastAPI)


class _FileTurn:
    """The file lock beside a SQLite database (`<file>-writers`, `flock`; the kernel releases
    it when its process dies) that the writer whose turn it is in each server process takes.
    Taken at once when it is free. Else a thread of the process's own waits for it in the
    kernel, which wakes that thread the moment the lock is let go, while the writer waits for
    the thread at most the time it has left: `flock` itself has no timeout, and polling it
    (0.2–2 ms apart) answered 710 and 793 events/s with a p99 of 116–140 ms where waiting in
    the kernel answered 986 and 1,054 with 27–29 ms. A grant that comes after its writer
    gave up is let go at once."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd: int | None = None
        self.changed = threading.Condition()
        self.wanted = False  # a writer waits for the thread to take the lock
        self.granted = False  # the thread took it for that writer
        self.pending = False  # the thread waits in the kernel
        self.waiter: threading.Thread | None = None

    def acquire(self, timeout: float) -> bool:
        with self.changed:
            if self.fd is None:
                self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
                weakref.finalize(self, os.close, self.fd)  # with the engine
            if not self.pending:  # (while the thread waits, this process must not take it)
                try:
                    fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return True
                except BlockingIOError:
                    pass
            self.wanted = True
            if self.waiter is None:
                self.waiter = threading.Thread(
                    target=self._wait, name="slamon-writers", daemon=True
                )
                self.waiter.start()
            self.changed.notify_all()
            got = self.changed.wait_for(lambda: self.granted, max(0.0, timeout))
            self.wanted = self.granted = False
            return got

    def release(self) -> None:
        assert self.fd is not None
        fcntl.flock(self.fd, fcntl.LOCK_UN)

    def _wait(self) -> None:
        assert self.fd is not None
        while True:
            with self.changed:
                self.changed.wait_for(lambda: self.wanted)
                self.pending = True
            fcntl.flock(self.fd, fcntl.LOCK_EX)  # (lets go of the interpreter meanwhile)
            with self.changed:
                self.pending = False
                if self.wanted:
                    self.granted, self.wanted = True, False
                    self.changed.notify_all()
                else:
                    fcntl.flock(self.fd, fcntl.LOCK_UN)  # its writer gave up meanwhile


class _Ranges:
    """Ranges of new ids handed out before the write lock is taken (`reserve_ids`), kept in
    a file beside the database (`<file>-ids`: each table's ranges in use and when each was
    handed out, under `flock` for the moment of a read and a write) so that the server
    processes on one file hand out different ranges. A range is in use until its write ends
    (`release_ids`), whether it stored the rows or not; one whose process died is forgotten
    after `RESERVED_SECONDS`. The file only keeps ranges apart; what makes an id safe to
    write is the writer's check under the lock (`core/batch.ids_free`)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = threading.Lock()  # (`flock` does not keep this process's threads apart)
        self.fd: int | None = None

    def take(self, table: str, largest: Callable[[], int], count: int) -> int:
        """The first of `count` ids past the largest stored and past every range in use.
        The largest is read under the file's lock: a range is given back only after its
        rows were committed, so a read made before another process gave one back could
        miss both its range and its rows (a quarter of the ranges of 4 clients' batches
        had been taken by the time their writes checked them)."""
        with self._held() as kept:
            now = time.time()  # (every process's: the file is shared)
            ranges = [r for r in kept.get(table, []) if abs(now - r[2]) < RESERVED_SECONDS]
            first = max([largest() + 1] + [last + 1 for _, last, _ in ranges])
            kept[table] = [*ranges, [first, first + count - 1, now]]
        return first

    def give_back(self, table: str, first: int) -> None:
        with self._held() as kept:
            kept[table] = [r for r in kept.get(table, []) if r[0] != first]

    @contextmanager
    def _held(self) -> Iterator[dict[str, list[list[Any]]]]:
        with self.lock:
            if self.fd is None:
                self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
                weakref.finalize(self, os.close, self.fd)
            fcntl.flock(self.fd, fcntl.LOCK_EX)
            try:
                kept = _ranges_kept(os.pread(self.fd, 1 << 20, 0))
                yield kept
                data = json.dumps(kept).encode()
                os.pwrite(self.fd, data, 0)
                os.ftruncate(self.fd, len(data))
            finally:
                fcntl.flock(self.fd, fcntl.LOCK_UN)


def _ranges_kept(data: bytes) -> dict[str, list[list[Any]]]:
    """The ranges a `<file>-ids` holds; none from a file that is empty or not one."""
    try:
        kept = json.loads(data or b"{}")
        return {
            str(table): [[int(a), int(b), float(at)] for a, b, at in ranges]
            for table, ranges in kept.items()
        }
    except (ValueError, TypeError, AttributeError):
        return {}


# How long a range handed out before the write lock is kept from others when its write has
# not given it back (its process died): well past the longest a write waits, for its turn
# and then for SQLite's own lock (`BUSY_SECONDS` each), and then runs. A range outlived
# costs nothing but a judgement made again: its write finds the ids taken
# (`core/batch.ids_free`).
RESERVED_SECONDS = 300.0


def reserve_ids(engine: Engine, table: sa.Table, count: int) -> list[int] | None:
    """`count` new ids of the table for rows made before the write that stores them takes
    SQLite's write lock (a batch of new tickets, judged while another process writes), or
    None where no one waits for that lock (PostgreSQL draws its ids from a sequence) or the
    database is no file. After the largest id stored and every range in use on this file;
    the writer checks under its lock that none was taken since (`core/batch.ids_free`), and
    gives the range back when its transaction has ended (`release_ids`)."""
    queue = _QUEUES.get(engine)
    if queue is None or queue.ranges is None:
        return None

    def largest() -> int:
        with read_connection(engine) as reader:
            row = reader.first(f'SELECT max(id) FROM "{table.name}"')
        return (row[0] if row else None) or 0

    first = queue.ranges.take(table.name, largest, count)
    return list(range(first, first + count))


def release_ids(engine: Engine, table: sa.Table, ids: list[int]) -> None:
    """A range from `reserve_ids` no longer in use: its rows are stored and committed (the
    largest stored id now says where the next begin), or were not written."""
    queue = _QUEUES.get(engine)
    if ids and queue is not None and queue.ranges is not None:
        queue.ranges.give_back(table.name, ids[0])


def busy_error() -> sa.exc.OperationalError:
    """What SQLite's busy timeout raises, so the API answers it alike (503) wherever a
    writer's wait for its turn runs out."""
    return sa.exc.OperationalError(
        "BEGIN IMMEDIATE", None, sqlite3.OperationalError("database is locked")
    )


def busy_seconds(engine: Engine) -> float:
    """How long a write of this engine waits for another's lock before it answers 503
    (`make_engine`'s `busy_seconds`)."""
    queue = _QUEUES.get(engine)
    if queue is not None:
        return queue.busy_seconds
    milliseconds = engine.get_execution_options().get(LOCK_WAIT_MS)
    return BUSY_SECONDS if milliseconds is None else milliseconds / 1000


_QUEUES: weakref.WeakKeyDictionary[Engine, _WriteQueue] = weakref.WeakKeyDictionary()


def write_queue(engine: Engine) -> AbstractContextManager[None]:
    """Hold it around a write transaction that many threads of this process may run at once
    (the HTTP write requests): on SQLite they take turns here; PostgreSQL needs no queue."""
    return _QUEUES.get(engine) or nullcontext()


# A large transaction's connection on SQLite. Its statement journal (each statement's undo,
# which a transaction of many statements keeps) stays in memory: past 64 KiB SQLite writes it
# to a temporary file, and a 20,000-ticket import wrote 360,000 times to one (of 505,000
# writes in all; 107,000 without). A page cache of 64 MiB (the default holds 2 MB): the
# import's indexes did not fit, and pages were read back 97,000 times (71,000). Together the
# import took 13-17 % less time. Not for the server's pooled connections, whose large sorts
# would then be held in memory too.
BULK_PRAGMAS = ("PRAGMA temp_store=MEMORY", "PRAGMA cache_size=-65536")


def _tune_sqlite(
    engine: Engine, busy_seconds: float, database: str | None, more: tuple[str, ...]
) -> None:
    _QUEUES[engine] = _WriteQueue(busy_seconds, database)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's BEGIN below decide when a transaction starts.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_seconds * 1000)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        for pragma in more:
            cursor.execute(pragma)
        cursor.close()
        # The search index's trigger on `tickets` calls it (see core/grams.py).
        dbapi_connection.create_function("slamon_grams", 3, fts_document, deterministic=True)
        # ... while this says so: true, unless a batch of new tickets indexes them itself
        # (tickets/service._insert_tickets); an argument sets it, for this connection only.
        by_trigger = [1]

        def grams_by_trigger(*setting: int) -> int:
            if setting:
                by_trigger[0] = setting[0]
            return by_trigger[0]

        dbapi_connection.create_function("slamon_grams_by_trigger", -1, grams_by_trigger)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        # Take the write lock up front so two writers queue instead of failing mid-way;
        # readers (see `read_scope`) begin deferred and never block writers.
        reading = conn.get_execution_options().get("readonly", False)
        conn.exec_driver_sql("BEGIN" if reading else "BEGIN IMMEDIATE")


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One transaction: committed when the block ends, rolled back if it raises."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def readonly(engine: Engine) -> Engine:
    """The engine whose transactions take no write lock: made once per engine (building it
    was a tenth of a millisecond on every request)."""
    made: Engine | None = engine.__dict__.get("_slamon_readonly")
    if made is None:
        # On PostgreSQL also READ ONLY (set on the driver, sent with BEGIN): a read ends by
        # COMMIT (`read_scope`), which must never write.
        only = {"postgresql_readonly": True} if engine.dialect.name == "postgresql" else {}
        made = engine.__dict__["_slamon_readonly"] = engine.execution_options(readonly=True, **only)
    return made


@contextmanager
def read_scope(engine: Engine) -> Iterator[Session]:
    """A read-only transaction that takes no write lock (on SQLite it begins deferred). On
    PostgreSQL it is READ ONLY and ends by COMMIT, for a read the same as a rollback but for
    one thing: the driver forgets the connection's prepared statements at every ROLLBACK,
    so reads that ended by one (the token read of every request among them) had every
    statement of every request parsed and planned anew by the server. SQLite has no read-only
    transaction and no such loss: its reads end by rollback, so nothing a read wrote stays."""
    postgres = engine.dialect.name == "postgresql"
    with Session(readonly(engine)) as session:
        try:
            yield session
        except BaseException:
            session.expunge_all()
            session.rollback()
            raise
        # Detach first: what was read stays usable after the transaction ends.
        session.expunge_all()
        if postgres:
            session.commit()
        else:
            session.rollback()


def as_sqlalchemy_error(
    dialect: sa.Dialect, driver: Any, statement: str, params: Any, exc: Any
) -> sa.exc.StatementError:
    """A driver's error as SQLAlchemy raises it: of the matching class (a lock timeout an
    `OperationalError`), and marked when it means the connection was lost."""
    lost = dialect.is_disconnect(exc, driver, None)
    return sa.exc.DBAPIError.instance(
        statement, params, exc, dialect.loaded_dbapi.Error, connection_invalidated=lost
    )


def driver_of(session: OrmSession) -> Any:
    """The driver's own connection under the session's, in its transaction."""
    connection = session.connection().connection.driver_connection
    assert connection is not None
    return connection


class driver_errors:  # (named as used: `with driver_errors(session, sql) as driver`)
    """The driver's connection (`driver_of`), its errors inside the block raised as
    SQLAlchemy raises them: of the matching class (a lock timeout an `OperationalError`),
    and marked when the connection was lost, which the API answers 503 (`api/errors.lost`);
    a driver's own error was a 500. Every statement `core/batch` runs by the driver goes
    through it, as does `limit_lock_waits`. (A class: `contextlib.contextmanager` cost 1 %
    of a write's instructions.)"""

    __slots__ = ("_driver", "_session", "_statement")

    def __init__(self, session: OrmSession, statement: str) -> None:
        self._session, self._statement = session, statement

    def __enter__(self) -> Any:
        self._driver = driver_of(self._session)
        return self._driver

    def __exit__(self, kind: object, exc: BaseException | None, trace: object) -> None:
        if exc is None:
            return
        dialect = self._session.get_bind().dialect
        if isinstance(exc, dialect.loaded_dbapi.Error):
            raise as_sqlalchemy_error(dialect, self._driver, self._statement, (), exc) from exc


class DriverReader:
    """A pooled connection's own driver, for a read of a few columns that every request
    makes: through SQLAlchemy's connection and statement machinery it cost 0.2 ms, by the
    driver 0.01 ms. One SELECT sees one snapshot, so it needs no transaction of its own."""

    def __init__(
        self, driver: Any, dialect: sa.Dialect, fresh: Callable[[], Any] | None = None
    ) -> None:
        self._driver, self._dialect, self._fresh = driver, dialect, fresh

    def first(self, sql: str, *params: Any) -> tuple[Any, ...] | None:
        """The first row of `sql`, whose parameters are written `?`. A read that finds its
        connection lost is made once more on a new one, when the reader was given `fresh`
        (the read-only pool's: a read repeated changes nothing)."""
        if self._dialect.name == "postgresql":
            sql = sql.replace("?", "%s")
        while True:
            try:
                row: tuple[Any, ...] | None = self._driver.execute(sql, params).fetchone()
                return row
            except self._dialect.loaded_dbapi.Error as exc:
                lost = self._dialect.is_disconnect(exc, self._driver, None)
                if self._fresh is None or not lost:  # (as `as_sqlalchemy_error` marks it)
                    raise as_sqlalchemy_error(
                        self._dialect, self._driver, sql, params, exc
                    ) from exc
                self._driver, self._fresh = self._fresh(), None  # once


@contextmanager
def read_connection(engine: Engine) -> Iterator[DriverReader]:
    """`read_scope` without SQLAlchemy's connection: see `DriverReader`. On PostgreSQL from
    a pool of its own (`_reader`) whose connections are read-only for the server and in the
    driver's autocommit: each read is one round trip where a BEGIN READ ONLY, the read and
    a COMMIT were three (every request makes this read), and still cannot write; its
    connections are not pinged when checked out (a round trip more on every request): a
    read that finds its connection lost (the server restarted) is made again, once, on a
    new one. On SQLite from the engine's pool: its driver begins no transaction for a read,
    and one for a write that the pool rolls back. A connection the read found lost goes out
    of the pool (the next checkout opens a new one)."""
    source = _reader(engine)
    held = [source.raw_connection()]

    def fresh() -> Any:
        """A new connection, the pool's others closed with the lost one: what lost one (a
        restart of the server) lost them all, as SQLAlchemy assumes of a disconnect."""
        held[0].invalidate()
        source.dispose()
        held[0] = source.raw_connection()
        return held[0].driver_connection

    postgres = engine.dialect.name == "postgresql"
    reader = DriverReader(held[0].driver_connection, engine.dialect, fresh if postgres else None)
    try:
        try:
            yield reader
        except BaseException:
            driver = held[0].driver_connection
            if driver is not None and not _lost(driver):
                driver.rollback()
            raise
    finally:
        if _lost(held[0].driver_connection):
            held[0].invalidate()
        held[0].close()  # back to the pool


# The token reads' pool on PostgreSQL: small, since a read holds its connection for one
# round trip (2 kept, 3 more under load).
READER_POOL = {"pool_size": 2, "max_overflow": 3}
_READER_LOCK = threading.Lock()


def _reader(engine: Engine) -> Engine:
    """The engine `read_connection` reads by: on PostgreSQL one with a pool of its own,
    made once per engine and disposed with it, whose connections the server keeps read-only
    (`default_transaction_read_only`) and the driver in autocommit; on SQLite `readonly`."""
    if engine.dialect.name != "postgresql":
        return readonly(engine)
    made: Engine | None = engine.__dict__.get("_slamon_reader")
    if made is not None:
        return made
    with _READER_LOCK:
        made = engine.__dict__.get("_slamon_reader")
        if made is None:
            made = engine.__dict__["_slamon_reader"] = _read_only_pool(engine)
    return made


def _read_only_pool(engine: Engine) -> Engine:
    given = engine.url.query.get("options")  # the URL's own, kept
    options = f"{given} " if isinstance(given, str) else ""
    made = sa.create_engine(
        engine.url,
        pool_pre_ping=False,  # a lost connection's read is made again instead (above)
        connect_args={"options": options + "-c default_transaction_read_only=on"},
        **READER_POOL,
    )
    sa.event.listen(made, "connect", _autocommit)
    sa.event.listen(engine, "engine_disposed", lambda _: made.dispose())
    return made


def _autocommit(driver: Any, _record: Any) -> None:
    driver.autocommit = True


def _lost(driver: Any) -> bool:
    """Whether the driver lost its connection (PostgreSQL's driver marks it; SQLite's file
    is never lost)."""
    return bool(getattr(driver, "broken", False) or getattr(driver, "closed", False))


def stored_instant(value: datetime | str | None) -> datetime | None:
    """An instant as a driver hands back a `UTCDateTime` column: SQLite's UTC wall time as
    text, PostgreSQL's aware value; aware UTC, as the column type gives it."""
    if value is None:
        return None
    if isinstance(value, str):  # (one parse with the offset: `.replace` cost 6x the parse)
        return datetime.fromisoformat(value + "+00:00")
    if value.tzinfo is None:  # as `UTCDateTime` reads a wall time: UTC
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(url), revision)


# The newest migration's revision: the schema this code needs. `tests/core/test_db.py` checks
# that it is alembic's head, so a new migration that does not update it fails the tests.
# Knowing it here spares every start (each CLI command, the server, each /readyz probe)
# importing alembic and reading every migration file: about 0.2 s of a CLI command (4.30 →
# 3.82 G instructions), 16 ms a probe on SQLite (bench/RESULTS.md, "Ninth round").
SCHEMA_HEAD = "a3f8c1d2e905"


def schema_state(engine: Engine) -> tuple[str | None, str]:
    """(current revision, head revision) of the database: the current one as alembic keeps
    it, in its one-row table `alembic_version` (none on a database never migrated). A read:
    a readiness probe must not wait for SQLite's write lock (an import holds it throughout)."""
    with readonly(engine).connect() as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return None, SCHEMA_HEAD
        rows = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all()
    # Two rows would be two heads (a branch alembic refuses to name one of): not current.
    return (", ".join(sorted(rows)) or None), SCHEMA_HEAD


def ensure_schema(engine: Engine) -> None:
    """Create the schema on an empty database; refuse to run on an outdated one."""
    current, head = schema_state(engine)
    if current == head:
        return
    if current is None and not sa.inspect(engine).get_table_names():
        upgrade(engine.url.render_as_string(hide_password=False))
        return
    raise RuntimeError(
        f"database schema is at {current or 'nothing'}, the code needs {head}: "
        "run `sla-monitor db upgrade`"
    )


# SQLite's statistics are taken again once the tickets have grown by this much since.
STATISTICS_GROWTH = 1.25


def refresh_statistics(connection: sa.Connection) -> None:
    """On SQLite, the statistics its planner chooses indexes by (`ANALYZE`), taken when the
    server starts, after an import and daily, if there are none yet or the tickets have
    grown by a quarter since. SQLite keeps none by itself: without them, at 78,000 tickets,
    the search for breached major tickets read every breached target state for each major
    ticket (21.7 s; 31 ms with them), and statistics left from a much smaller file made an
    import's reads scan whole tables. Exact, not sampled: a sample of 400 rows an index saw
    each severity or pool as a few hundred tickets, and at 1,000,000 tickets the search by
    pool, severity and breached took 0.5-0.6 s instead of 16-18 ms. (A whole `ANALYZE` of
    1,000,000 tickets took 1.7 s.) An empty tickets table leaves no statistics row, so
    until the first ticket each call analyses again (in milliseconds). PostgreSQL's
    autovacuum keeps its statistics itself."""
    if connection.dialect.name != "sqlite":
        return
    tickets = connection.exec_driver_sql("SELECT max(id) FROM tickets").scalar() or 0
    has_statistics = connection.exec_driver_sql(
        "SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'"
    ).scalar()
    if has_statistics:
        row = connection.exec_driver_sql(
            "SELECT stat FROM sqlite_stat1 WHERE tbl = 'tickets' LIMIT 1"
        ).scalar()
        counted = int(row.split()[0]) if row else None
        if counted is not None and tickets < counted * STATISTICS_GROWTH:
            return
        # Made anew: ANALYZE into an existing table changes no schema, and every connection
        # already open (the server's pool, the other workers) would plan by the old ones.
        connection.exec_driver_sql("DROP TABLE sqlite_stat1")
    connection.exec_driver_sql("ANALYZE")
