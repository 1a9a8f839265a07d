"""What every route needs, declared in its signature: the caller and its role, a read or a
write transaction, and the records it asks for, scoped to the caller's pool.

    ReadSession              a read-only transaction (no write lock on SQLite)
    ScopedTicket             the ticket in the path, 404 for another pool's
    ScopedBreach             the breach in the path, 404 for another pool's
    TicketWriter, ...        a write transaction with the write flow and Idempotency-Key,
                             opened in the handler's thread and committed by its reply,
                             before the answer is sent
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Annotated, Any, Protocol, TypeVar

from fastapi import Depends, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, BeforeValidator
from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from monitor.api import idempotency
from monitor.api.coalesce import Coalescer
from monitor.api.errors import error_body
from monitor.api.idempotency import Answer, Claim
from monitor.auth.service import Principal, authenticate_token
from monitor.breaches.models import Breach
from monitor.breaches.service import get_breach
from monitor.core.clock import Clock
from monitor.core.db import (
    busy_seconds,
    limit_lock_waits,
    read_connection,
    read_scope,
    write_queue,
)
from monitor.core.errors import (
    DomainError,
    Forbidden,
    IdempotencyMismatch,
    TicketNotFound,
    Unauthorized,
)
from monitor.core.schemas import BoundedTime
from monitor.core.settings import Settings
from monitor.judging.flow import WriteFlow
from monitor.scheduler.runner import Runner
from monitor.sla.service import ContextCache, SlaContext
from monitor.tickets.models import Ticket
from monitor.tickets.service import Actor, lock_ticket

bearer = HTTPBearer(auto_error=False, description="an API token from `sla-monitor token create`")


class Releasable(Protocol):
    """What a write made before it took the lock (`Write.ahead`), let go when it ends."""

    def release(self) -> None: ...


R = TypeVar("R", bound=Releasable)


@dataclass
class AppState:
    settings: Settings
    engine: Engine
    clock: Clock
    contexts: ContextCache
    runner: Runner | None = None
    # The new tickets this process's requests are writing together (`api/coalesce.py`).
    coalescer: Coalescer = field(init=False)

    def __post_init__(self) -> None:
        self.coalescer = Coalescer(busy_seconds(self.engine))


def state(request: Request) -> AppState:
    app_state: AppState = request.app.state.monitor
    return app_state


async def _state(request: Request) -> AppState:
    # async, as every dependency that does no I/O: a plain function costs a hop to the
    # thread pool and back on every request.
    return state(request)


App = Annotated[AppState, Depends(_state)]


# The caller --------------------------------------------------------------------------------
def principal(
    app: App, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("a bearer token is required")
    with read_connection(app.engine) as reader:  # by the driver: every request pays
        found = authenticate_token(reader, credentials.credentials, app.clock.now())
    if found is None:
        raise Unauthorized("the token is not valid")
    return found


def allow(*roles: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency admitting only these roles; every route declares one."""

    async def check(who: Annotated[Principal, Depends(principal)]) -> Principal:
        if who.role not in roles:
            raise Forbidden(f"the {who.role} role may not do this")
        return who

    check.roles = roles  # type: ignore[attr-defined]
    return check


READ_TICKETS = allow("operator", "supervisor", "admin", "evaluator")
WRITE_TICKETS = allow("operator", "admin")
WRITE_EVENTS = allow("operator", "supervisor", "admin")
READ_BREACHES = allow("operator", "supervisor", "admin", "evaluator")
REVIEW = allow("supervisor", "admin")
READ_FINDINGS = allow("operator", "supervisor", "admin")
READ_SCORING = allow("supervisor", "admin", "evaluator")
READ_REPORTS = allow("supervisor", "admin", "evaluator")

EVENT_SOURCE = {"operator": "operator", "supervisor": "supervisor", "admin": "system"}


def pool_scope(who: Principal) -> str | None:
    """The pool a caller is limited to; another pool's records answer as if absent."""
    return who.pool if who.role == "operator" else None


def actor_of(who: Principal) -> Actor:
    """Who writes, as the write flow records it."""
    return Actor(who.name, who.role, EVENT_SOURCE.get(who.role, "system"), pool_scope(who))


# Transactions ------------------------------------------------------------------------------
def read_session(app: App) -> Iterator[Session]:
    with read_scope(app.engine) as session:
        yield session


ReadSession = Annotated[Session, Depends(read_session)]


def read_context(app: App, session: ReadSession) -> SlaContext:
    return app.contexts.get(session)


ReadContext = Annotated[SlaContext, Depends(read_context)]


@dataclass
class Write:
    """One write transaction with the write flow, who writes, and the key it holds.

    It opens on first use, in the thread that uses it, and `reply` commits it in the
    handler's thread before the answer is sent, so a 2xx is durable. A route that only writes
    (`POST /tickets`) holds the write lock (on SQLite) for one stretch of one thread; one
    whose dependency reads a record under the lock first (an event's `WritableTicket`) holds
    it from that dependency on, across one turn of the event loop, as every write did
    before."""

    app: AppState
    who: Principal
    key: str | None  # the Idempotency-Key, if one came
    request_hash: str
    # Set by a route that names every problem of a bad body in one 422 (tickets/router.py);
    # called in this transaction only when FastAPI's own validation of the body failed.
    every_problem: Callable[[Any], None] | None = None
    _open: _Open | None = None
    _done: bool = False
    _made: list[Releasable] = field(default_factory=list)  # (by `ahead`)

    @property
    def actor(self) -> Actor:
        return actor_of(self.who)

    @property
    def session(self) -> Session:
        return self._begin().session

    @property
    def ctx(self) -> SlaContext:
        return self._begin().ctx

    @property
    def flow(self) -> WriteFlow:
        return self._begin().flow

    def ahead(self, work: Callable[[Engine, SlaContext], R | None]) -> R | None:
        """`work` done before this write takes SQLite's write lock, with the context a read
        sees, while the other server processes write: what it makes, the write checks under
        the lock, and it is released when the write ends. None on PostgreSQL, whose writers
        do not wait for one another's lock, and once the transaction is open."""
        app = self.app
        if self._open is not None or self._done or app.engine.dialect.name != "sqlite":
            return None
        with read_scope(app.engine) as session:
            ctx = app.contexts.get(session)
        made = work(app.engine, ctx)
        if made is not None:
            self._made.append(made)
        return made

    def _begin(self) -> _Open:
        if self._open is not None:
            return self._open
        if self._done:
            raise RuntimeError("this write transaction has ended")
        app = self.app
        queue = write_queue(app.engine)
        queue.__enter__()
        session = Session(app.engine, expire_on_commit=False)
        try:
            limit_lock_waits(session)
            claim = idempotency.claim(
                session, self.who.key, self.key, self.request_hash, app.clock.now()
            )
            ctx = app.contexts.get(session)
        except BaseException:
            _end(session, queue, commit=False)
            raise
        self._open = _Open(session, ctx, WriteFlow(session, ctx), claim, queue)
        return self._open

    def reply(
        self, status_code: int, body: BaseModel, headers: dict[str, str] | None = None
    ) -> Response:
        """Commit, and the answer (stored beside the write when an Idempotency-Key came)."""
        opened = self._begin()
        if opened.claim is None:
            response = json_response(status_code, body, headers)
        else:
            answer = Answer(status_code, body.model_dump(mode="json"), headers or {})
            opened.claim.finish(opened.session, answer)
            response = answer.response()
        self.end(commit=True)
        return response

    def reply_made(self, status_code: int, make: Callable[[], BaseModel]) -> Response:
        """As `reply`, but the answer made once the write has committed, holding no lock
        (from what the write kept in memory: the session is closed by then); with an
        Idempotency-Key it is made before, to be stored beside the write."""
        if self.key is not None:
            return self.reply(status_code, make())
        self.end(commit=True)
        return json_response(status_code, make(), None)

    def end(self, *, commit: bool) -> None:
        """Commit (the flow finished first) or roll back, and let the next writer in."""
        opened, self._open, self._done = self._open, None, True
        try:
            if opened is None:
                return
            if commit:
                try:
                    opened.flow.finish()
                except BaseException:
                    _end(opened.session, opened.queue, commit=False)
                    raise
            _end(opened.session, opened.queue, commit=commit)
        finally:
            made, self._made = self._made, []
            for each in made:
                each.release()

    def check_every_problem(self, body: Any) -> None:
        """Raise InvalidInput naming every problem of a body FastAPI refused, if the route
        asked for it (in a transaction of its own, rolled back)."""
        try:
            if self.every_problem is not None:
                self.every_problem(body)
        finally:
            self.end(commit=False)  # (and whatever a dependency began before the refusal)


def json_response(status_code: int, body: BaseModel, headers: dict[str, str] | None) -> Response:
    # Encoded by pydantic-core at once: the bytes JSONResponse writes for `body.model_dump()`,
    # without building the dict and encoding it in Python.
    data = body.model_dump_json().encode()
    return Response(data, status_code, headers, media_type="application/json")


@dataclass
class _Open:
    session: Session
    ctx: SlaContext
    flow: WriteFlow
    claim: Claim | None
    queue: AbstractContextManager[None]


def _end(session: Session, queue: AbstractContextManager[None], *, commit: bool) -> None:
    try:
        if commit:
            session.commit()
        else:
            session.rollback()
    finally:
        session.close()
        queue.__exit__(None, None, None)


IdemKey = Annotated[str | None, Header(alias="Idempotency-Key", description="retry-safe writes")]


def writer(check: Callable[..., Awaitable[Principal]]) -> Callable[..., AsyncIterator[Write]]:
    """A write-transaction dependency for callers that pass `check`. It does no I/O of its own
    on the event loop: the transaction opens in the handler's thread (see `Write`)."""

    # Plain defaults, not Annotated: `check` is local, and annotations here are strings. The
    # application and the fingerprint come from the request here, not as dependencies of
    # their own: each dependency FastAPI solves costs every write request.
    async def open_write(
        request: Request,
        idempotency_key: IdemKey = None,
        who: Principal = Depends(check),
    ) -> AsyncIterator[Write]:
        app = state(request)
        # Only a keyed request is compared with another (its retry).
        request_hash = "" if idempotency_key is None else await idempotency.fingerprint(request)
        write = Write(app, who, idempotency_key, request_hash)
        try:
            try:
                yield write
            except RequestValidationError as exc:
                await run_in_threadpool(write.check_every_problem, exc.body)
                raise
            except BaseException:
                await run_in_threadpool(write.end, commit=False)
                raise
            if not write._done:  # a handler that did not reply: commit what it wrote
                await run_in_threadpool(write.end, commit=True)
        except DomainError as exc:
            if idempotency_key is not None and not isinstance(exc, IdempotencyMismatch):
                refusal = Answer(exc.status, error_body(exc))
                await run_in_threadpool(
                    idempotency.remember_refusal,
                    app.engine,
                    who.key,
                    idempotency_key,
                    request_hash,
                    refusal,
                    app.clock.now(),
                )
            raise

    return open_write


_write_tickets = writer(WRITE_TICKETS)
_write_events = writer(WRITE_EVENTS)
_review = writer(REVIEW)
TicketWriter = Annotated[Write, Depends(_write_tickets, scope="function")]
EventWriter = Annotated[Write, Depends(_write_events, scope="function")]
Reviewer = Annotated[Write, Depends(_review, scope="function")]


# Records, scoped to the caller's pool ------------------------------------------------------
# Ids fit the database's integer column on SQLite and PostgreSQL alike.
MAX_ID = 2_147_483_647
TicketId = Annotated[int, Path(ge=1, le=MAX_ID)]
BreachId = Annotated[int, Path(ge=1, le=MAX_ID)]


def scoped(ticket: Ticket | None, who: Principal, ticket_id: Any) -> Ticket:
    """The one place that hides another pool's ticket."""
    scope = pool_scope(who)
    if ticket is None or (scope is not None and ticket.pool != scope):
        raise TicketNotFound(f"no ticket {ticket_id}")
    return ticket


def read_ticket(
    ticket_id: TicketId, session: ReadSession, who: Annotated[Principal, Depends(READ_TICKETS)]
) -> Ticket:
    return scoped(session.get(Ticket, ticket_id), who, ticket_id)


def event_ticket(ticket_id: TicketId, write: EventWriter) -> Ticket:
    return scoped(lock_ticket(write.session, ticket_id), write.who, ticket_id)


ScopedTicket = Annotated[Ticket, Depends(read_ticket)]
WritableTicket = Annotated[Ticket, Depends(event_ticket)]


def read_breach(
    breach_id: BreachId, session: ReadSession, who: Annotated[Principal, Depends(READ_BREACHES)]
) -> Breach:
    return get_breach(session, breach_id, pool_scope(who))


def review_breach_of(breach_id: BreachId, write: Reviewer) -> Breach:
    return get_breach(write.session, breach_id, pool_scope(write.who))


ScopedBreach = Annotated[Breach, Depends(read_breach)]
ReviewedBreach = Annotated[Breach, Depends(review_breach_of)]


# A filter value: an id such as a pool, severity or finding kind.
Word = Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_.:-]+$", max_length=64)]
# A filter value people may also write as its Chinese name (政务二云, 重大故障, 监控发现).
Label = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=64,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="a code or its Chinese name",
    ),
]


def _offset_space(value: Any) -> Any:
    """An unencoded `+08:00` arrives as ` 08:00`: read the space as the plus it was."""
    if isinstance(value, str):
        return OFFSET_SPACE.sub(r"+\1", value.strip("\r\n\t"))
    return value


OFFSET_SPACE = re.compile(r"(?<=\d) (\d{2}:?\d{2})$")
# A time in a query string; `+` must be sent as %2B, but a bare `+` (read as a space) is
# understood too.
QueryTime = Annotated[
    BoundedTime | None,
    BeforeValidator(_offset_space),
    Query(
        description="ISO 8601, e.g. 2022-08-10T11:41:00%2B08:00 (`+` encoded as %2B); "
        "without an offset it is read in the configured zone"
    ),
]
