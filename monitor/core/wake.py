"""Notice that a write created an earlier deadline, so the scheduler re-arms its wake.

In one process the notice is a direct call. On PostgreSQL it is also sent with NOTIFY, which
the database delivers when the writing transaction commits, so the leader re-arms even when
the write happened in another replica. SQLite has no NOTIFY: the leader asks the file, a few
times a second, whether any other connection has committed since (`PRAGMA data_version`, a
read of the file's header), and if one has, it reads its next wake again. That covers the
other server processes on the file (`serve --workers`) and every CLI command.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable
from contextlib import closing
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

CHANNEL = "slamon_wake"
Listener = Callable[[datetime], None]
_listeners: list[Listener] = []
log = logging.getLogger(__name__)


def subscribe(listener: Listener) -> None:
    _listeners.append(listener)


def unsubscribe(listener: Listener) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


def notify(instant: datetime | None) -> None:
    if instant is None:
        return
    for listener in list(_listeners):
        listener(instant)


def publish(session: Session, instant: datetime | None) -> None:
    """Tell this process now, and (PostgreSQL) every process once the transaction commits."""
    if instant is None:
        return
    notify(instant)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            sa.text("SELECT pg_notify(:channel, :at)"),
            {"channel": CHANNEL, "at": instant.isoformat()},
        )


# How often the SQLite leader asks whether another connection has committed: a deadline
# another process writes is armed within this, well inside the 2 s detection target.
SQLITE_POLL_SECONDS = 0.25


class Receiver:
    """Hands other processes' notices to `listener` (PostgreSQL), or tells `changed` that
    another connection has committed to the SQLite file, while `active()` (the lease)."""

    def __init__(
        self,
        engine: Engine,
        listener: Listener,
        changed: Callable[[], None] | None = None,
        active: Callable[[], bool] = lambda: True,
    ) -> None:
        self.engine, self.listener, self.changed, self.active = engine, listener, changed, active
        self.listening = threading.Event()  # set once LISTEN (or the first read) is in place
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.engine.dialect.name == "postgresql":
            run = self._run
        elif self.changed is not None and self.engine.url.database not in (None, "", ":memory:"):
            run = self._poll
        else:
            return
        self._thread = threading.Thread(target=run, name="slamon-wake", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        assert self.changed is not None
        path = str(self.engine.url.database)
        while not self._stop.is_set():
            try:
                with closing(sqlite3.connect(path, timeout=5, isolation_level=None)) as conn:
                    seen: int | None = None  # (a connection's own numbering)
                    while not self._stop.is_set():
                        version = conn.execute("PRAGMA data_version").fetchone()[0]
                        self.listening.set()
                        if seen is not None and version != seen and self.active():
                            self.changed()
                        seen = version
                        self._stop.wait(SQLITE_POLL_SECONDS)
            except Exception:
                self.listening.clear()
                log.exception("wake receiver lost the database file; trying again")
                self._stop.wait(2)

    def _run(self) -> None:
        import psycopg

        url = self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        while not self._stop.is_set():
            try:
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=1.0, stop_after=1):
                            self.listener(datetime.fromisoformat(note.payload))
            except Exception:
                self.listening.clear()
                log.exception("wake receiver lost its connection; reconnecting")
                self._stop.wait(2)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
