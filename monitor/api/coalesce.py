"""New tickets posted at the same moment to one server process, written in one transaction.

Each `POST /tickets` without an Idempotency-Key hands its ticket to the process's
`Coalescer` and waits. The first to find no write of its caller's under way writes: once
its transaction is open (on SQLite, once its turn at the write lock has come, so the
tickets that queued behind the other writers join it), it takes every ticket waiting by
then from the same caller (the same token: one actor for the audit records; a second
ticket of the same external id waits for the next group, to be refused by name as it would
be alone) and writes them as `POST /tickets/batch` does: one statement a table (on
PostgreSQL a small group's tables all in one, `core/batch.insert_together`), one commit.
Each request is answered with its own ticket, only after the commit that holds it.

A ticket the group's check refuses gets its own 422 (its problems, as alone) and the others
are written without it; anything else that fails the group (a lock wait that ran out, a
lost connection) fails each of its requests with the same answer, where alone it might
have failed only the ticket that met it. Requests with an Idempotency-Key are written one
a transaction (their stored answer is the request's own).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from sqlmodel import Session

from monitor.auth.service import Principal
from monitor.core.db import busy_error
from monitor.core.errors import InvalidInput
from monitor.tickets.models import Ticket
from monitor.tickets.schemas import MAX_TICKETS_PER_BATCH, TicketIn, TicketOut
from monitor.tickets.service import InvalidTickets


class _Write(Protocol):
    """What the coalescer needs of a request's write transaction (`api/deps.Write`)."""

    who: Principal

    @property
    def session(self) -> Session: ...  # (opens it)

    def end(self, *, commit: bool) -> None: ...


W = TypeVar("W", bound=_Write)


@dataclass(eq=False)
class _Waiting:
    caller: str  # the token's key
    body: TicketIn
    taken: bool = False  # into a group being written (no longer waiting for its turn)
    done: bool = False
    result: tuple[Ticket, TicketOut] | None = None
    error: BaseException | None = None


class Coalescer:
    """A server process's new tickets waiting to be written, and whose are being written
    (one group at a time a caller; other callers' groups are written alongside, as their
    requests were before). One per application (`AppState.coalescer`); `busy_seconds`: how
    long a request waits for its turn before it answers 503 (the engine's, as a write waits
    for a lock)."""

    def __init__(self, busy_seconds: float) -> None:
        self.busy_seconds = busy_seconds
        self._turn = threading.Condition()
        self._waiting: list[_Waiting] = []
        self._writing: set[str] = set()  # the callers whose group is being written

    def create(
        self,
        write: W,
        body: TicketIn,
        writer: Callable[[W, list[TicketIn]], list[tuple[Ticket, TicketOut]]],
    ) -> tuple[Ticket, TicketOut]:
        """Write `body` by `write`'s caller, with whatever waits with it; its ticket and
        answer, or the error its request answers. `writer` writes a group in `write`'s
        transaction and shows each of its tickets (`tickets/router.py`), in the group's
        order, or raises InvalidTickets having written nothing."""
        me = _Waiting(write.who.key, body)
        deadline = time.monotonic() + self.busy_seconds
        with self._turn:
            self._waiting.append(me)
            while me.caller in self._writing and not me.done:
                left = deadline - time.monotonic()
                if me.taken:  # its group is being written: its answer comes
                    self._turn.wait()
                elif left > 0:
                    self._turn.wait(left)
                else:  # as a write answers that waited too long for its lock; never written
                    self._waiting.remove(me)
                    raise busy_error()
            if not me.done:  # its turn: it writes, its own ticket first
                self._writing.add(me.caller)
                me.taken = True
                self._waiting.remove(me)
        if not me.done:
            try:
                self._write_group(write, me, writer)
            finally:
                with self._turn:
                    self._writing.discard(me.caller)
                    self._turn.notify_all()
        if me.error is not None:
            raise me.error
        assert me.result is not None
        return me.result

    def _write_group(
        self,
        write: W,
        me: _Waiting,
        writer: Callable[[W, list[TicketIn]], list[tuple[Ticket, TicketOut]]],
    ) -> None:
        taken = [me]
        try:
            write.session  # noqa: B018  (opens the transaction: on SQLite, waits for the turn)
            taken = group = self._take(me)
            done: list[tuple[Ticket, TicketOut]] = []
            while group:
                try:
                    done = writer(write, [w.body for w in group])
                    break
                except InvalidTickets as exc:  # (nothing written: the others go on without)
                    for w, problems in zip(group, exc.each, strict=True):
                        if problems:
                            w.error = InvalidInput(problems)
                    group = [w for w in group if w.error is None]
            for w, result in zip(group, done, strict=True):
                w.result = result  # (an error set below, should the commit fail, wins)
            write.end(commit=True)
        except BaseException as exc:
            for w in taken:  # (first: ending may fail too)
                if w.error is None:
                    w.error = exc
            write.end(commit=False)
        finally:
            with self._turn:
                for w in taken:
                    w.done = True

    def _take(self, me: _Waiting) -> list[_Waiting]:
        """`me` and the tickets waiting now that its group writes, out of the queue: the
        same caller's, one per external id (whatever the pool's spelling), at most as many
        as a batch takes (the rest wait for the next group)."""
        with self._turn:
            group, ids = [me], {me.body.external_id} - {None}
            for w in self._waiting:
                if len(group) == MAX_TICKETS_PER_BATCH:
                    break
                external_id = w.body.external_id
                if w.caller == me.caller and external_id not in ids:
                    group.append(w)
                    if external_id is not None:
                        ids.add(external_id)
            for w in group[1:]:
                self._waiting.remove(w)
                w.taken = True
        return group
