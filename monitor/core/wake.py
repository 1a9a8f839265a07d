"""Notice that a write created an earlier deadline, so the scheduler re-arms its wake.

In one process the notice is a direct call. On PostgreSQL it is also sent with NOTIFY, which
the database delivers when the writing transaction commits, so the leader re-arms even when
the write happened in another replica.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
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


class Receiver:
    """Listens for other processes' notices on PostgreSQL and hands them to `listener`."""

    def __init__(self, engine: Engine, listener: Listener) -> None:
        self.engine, self.listener = engine, listener
        self.listening = threading.Event()  # set once LISTEN is in place
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.engine.dialect.name != "postgresql":
            return  # one SQLite file has one writer process: the direct call suffices
        self._thread = threading.Thread(target=self._run, name="slamon-wake", daemon=True)
        self._thread.start()

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
