"""Work that builds many objects or rows at once: the year-end feed, large reports, imports."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

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


_DEFERRED = "slamon.deferred_inserts"


@contextmanager
def deferred_inserts(session: Session) -> Iterator[None]:
    """Hold the rows `insert_rows` is given and write each table's rows in one statement when
    the block ends, in the order the tables were first used (a batch of new tickets writes
    its audit records, target states and findings once per batch instead of once per ticket).
    Only for rows nothing in the block reads back; nested blocks join the outer one. Inside a
    savepoint rows are written at once (the audit chain reads its head again there)."""
    if _DEFERRED in session.info or session.in_nested_transaction():
        yield
        return
    held: dict[sa.Table, list[dict[str, Any]]] = {}
    session.info[_DEFERRED] = held
    try:
        yield
    finally:
        del session.info[_DEFERRED]
    for table, rows in held.items():
        session.execute(sa.insert(table), rows)


def insert_rows(session: Session, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """Insert rows with one statement, now or (inside `deferred_inserts`) when the batch ends."""
    if not rows:
        return
    held = session.info.get(_DEFERRED)
    if held is None:
        session.execute(sa.insert(table), rows)
    else:
        held.setdefault(table, []).extend(rows)
