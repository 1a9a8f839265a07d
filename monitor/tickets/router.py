"""HTTP routes for tickets, their events and their evidence."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import Response, StreamingResponse
from pydantic import ValidationError

from monitor.api.deps import (
    READ_TICKETS,
    App,
    EventWriter,
    Label,
    QueryTime,
    ReadContext,
    ReadSession,
    ScopedTicket,
    TicketWriter,
    WritableTicket,
    Write,
    json_response,
    pool_scope,
)
from monitor.api.errors import responses
from monitor.auth.service import Principal
from monitor.core.config_files import problems_of
from monitor.core.errors import InvalidInput, Problem
from monitor.evidence import service as evidence
from monitor.evidence.schemas import EvidenceOut
from monitor.judging.flow import WriteFlow
from monitor.sla.models import JudgedState
from monitor.sla.words import words
from monitor.tickets.importer import create_parsed, make_ahead, parse_rows, ticket_rows
from monitor.tickets.lookup import TicketFilters, by_external_id, find_page, summary
from monitor.tickets.models import StoredEvent, Ticket
from monitor.tickets.schemas import (
    MAX_TICKETS_PER_BATCH,
    Checkable,
    EventIn,
    TicketBatchIn,
    TicketBatchOut,
    TicketIn,
    TicketOut,
    TicketPage,
    checkable_without_bad_types,
)
from monitor.tickets.service import append_event, check_new_ticket, ticket_out

router = APIRouter(prefix="/tickets", tags=["tickets"])


ERRORS = responses("ticket")
Reader = Annotated[Principal, Depends(READ_TICKETS)]


def _refuse_with_every_problem(
    write: Write, model: type[Checkable], deeper: Callable[[Checkable], list[Problem]]
) -> None:
    """One 422 with every problem of the body: a bad event type must not hide the other
    problems (unknown pool, a time in the future, …), as in an import. Checked only when
    FastAPI's validation of the body fails (`Write.every_problem`), so a valid body is
    validated once."""
    write.every_problem = partial(_every_problem_of, model, deeper)


def _every_problem_of(
    model: type[Checkable], deeper: Callable[[Checkable], list[Problem]], raw: Any
) -> None:
    if not isinstance(raw, dict):
        return  # not a JSON object: FastAPI's own answer says so
    try:
        model.model_validate(raw)
    except ValidationError as exc:
        problems = problems_of(exc)
        checkable = checkable_without_bad_types(model, raw, exc)
        if checkable is not None:
            problems += deeper(checkable)
        raise InvalidInput(problems) from None


async def _every_problem(write: TicketWriter) -> Write:
    def deeper(data: TicketIn) -> list[Problem]:
        data = words(write.ctx).ticket_in(data)
        return check_new_ticket(write.session, write.ctx, data, write.actor)[1]

    _refuse_with_every_problem(write, TicketIn, deeper)
    return write


def _judged(
    flow: WriteFlow, ticket: Ticket
) -> tuple[Sequence[StoredEvent] | None, Sequence[JudgedState]] | None:
    """What the write just judged the ticket by, for its answer (no second read): its target
    states, and its events unless it was judged by a part of them."""
    last = flow.last
    if last is None or last.ticket.id != ticket.id:
        return None
    return (last.events if last.complete else None), last.states


@router.post("", status_code=201, response_model=TicketOut, responses=ERRORS)
def post_ticket(body: TicketIn, write: Annotated[Write, Depends(_every_problem)]) -> Response:
    """Create a ticket with its events (the import format); deadlines are judged at once."""
    if write.key is not None:  # (its stored answer is its own: alone)
        ticket = write.flow.create_ticket(body, write.actor)
        out = ticket_out(write.session, write.ctx, ticket, _judged(write.flow, ticket))
        return write.reply(201, out, {"Location": f"/api/v1/tickets/{ticket.id}"})
    ticket, out = write.app.coalescer.create(write, body, _create_and_show)
    write.end(commit=True)  # (a request whose ticket another wrote opened nothing: ended here)
    return json_response(201, out, {"Location": f"/api/v1/tickets/{ticket.id}"})


def _create_and_show(write: Write, bodies: list[TicketIn]) -> list[tuple[Ticket, TicketOut]]:
    """New tickets posted together (`api/coalesce.py`), each with its answer."""
    flow = write.flow
    tickets = flow.create_tickets(bodies, write.actor, keep_each=True)
    return [
        (t, ticket_out(write.session, write.ctx, t, (s.events if s.complete else None, s.states)))
        for t, s in zip(tickets, flow.each, strict=True)
    ]


async def _every_batch_problem(write: TicketWriter) -> Write:
    write.every_problem = partial(_every_problem_of_batch, write)
    return write


def _every_problem_of_batch(write: Write, raw: Any) -> None:
    """A batch FastAPI refused: when its shape is right (an object of 1 to 100 tickets), each
    ticket is checked as an import checks its rows, so one 422 names every problem of every
    ticket (`tickets[3].events[1].at`); else FastAPI's own answer names what is wrong."""
    if not isinstance(raw, dict) or set(raw) != {"tickets"}:
        return
    tickets = raw["tickets"]
    if not isinstance(tickets, list) or not 1 <= len(tickets) <= MAX_TICKETS_PER_BATCH:
        return
    rows = ticket_rows(tickets)
    parsed, problems = parse_rows(rows, write.ctx)
    if problems:  # (else FastAPI refused it for a reason of its own, which its answer names)
        create_parsed(write.flow, parsed, problems, write.actor)  # only checks: raises


@router.post("/batch", status_code=201, response_model=TicketBatchOut, responses=ERRORS)
def post_tickets(
    body: TicketBatchIn, write: Annotated[Write, Depends(_every_batch_problem)]
) -> Response:
    """Create up to 100 tickets in one request, each judged as `POST /tickets` judges it: all
    of them, or none and every problem named (`tickets[i].field`). For a ticket system that
    sends many at once (catching up after an outage): one transaction and one commit for
    all, instead of one per ticket."""
    parsed = list(zip(ticket_rows(body.tickets), body.tickets, strict=True))
    ahead = write.ahead(partial(make_ahead, parsed=parsed, actor=write.actor))
    ctx = write.ctx
    done = create_parsed(write.flow, parsed, [], write.actor, ahead)

    def answer() -> TicketBatchOut:
        shown = [summary(ctx, t, done.states[t.id or 0]) for t in done.created]
        return TicketBatchOut(tickets=shown, events=done.events)

    return write.reply_made(201, answer)


@router.get("", response_model=TicketPage, responses=ERRORS)
def list_tickets(
    session: ReadSession,
    ctx: ReadContext,
    who: Reader,
    pool: Label = None,
    severity: Label = None,
    status: Annotated[
        str | None,
        Query(max_length=16, description="open/处理中, resolved/已解决 or closed/已关闭"),
    ] = None,
    breached: bool | None = None,
    reported_from: QueryTime = None,
    reported_to: QueryTime = None,
    q: Annotated[
        str | None,
        Query(
            max_length=200,
            pattern=r"^[^\x00]*$",
            description="id, external id or a word of the title",
        ),
    ] = None,
    source: Label = None,
    page: Annotated[int, Query(ge=1, le=100000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=500)] = 50,
) -> TicketPage:
    """Find tickets; codes or Chinese names (政务二云, 重大故障, 监控发现); an operator sees only
    its own pool."""
    filters = TicketFilters(pool, severity, status, breached, reported_from, reported_to, q, source)
    try:
        return find_page(session, ctx, filters, scope=pool_scope(who), page=page, per_page=per_page)
    except InvalidInput as exc:
        raise InvalidInput([Problem(f"query.{p.loc}", p.msg) for p in exc.problems]) from None


@router.get("/by-external-id/{external_id}", response_model=TicketOut, responses=ERRORS)
def get_ticket_by_external_id(
    external_id: Annotated[str, PathParam(min_length=1, max_length=128)],
    session: ReadSession,
    ctx: ReadContext,
    who: Reader,
    pool: Label = None,
) -> TicketOut:
    """One ticket by the operator's own number, within the caller's pool; `pool` picks one
    when two pools use the same number."""
    ticket = by_external_id(session, ctx, external_id, scope=pool_scope(who), pool=pool)
    return ticket_out(session, ctx, ticket)


@router.get("/{ticket_id}", response_model=TicketOut, responses=ERRORS)
def get_ticket(ticket: ScopedTicket, session: ReadSession, ctx: ReadContext) -> TicketOut:
    """One ticket with its events and each target's state and explanation."""
    return ticket_out(session, ctx, ticket)


async def _every_event_problem(ticket: WritableTicket, write: EventWriter) -> Write:
    def deeper(data: EventIn) -> list[Problem]:
        # The append's own checks; what it may write goes with the refusal's rollback.
        try:
            append_event(
                write.session, write.ctx, ticket, words(write.ctx).event_in(data), write.actor
            )
        except InvalidInput as exc:
            return exc.problems
        return []

    _refuse_with_every_problem(write, EventIn, deeper)
    return write


@router.post("/{ticket_id}/events", status_code=201, response_model=TicketOut, responses=ERRORS)
def post_event(
    ticket: WritableTicket, body: EventIn, write: Annotated[Write, Depends(_every_event_problem)]
) -> Response:
    """Append an event (or a correction); the ticket is re-judged in the same transaction."""
    write.flow.add_event(ticket, body, write.actor)
    return write.reply(
        201, ticket_out(write.session, write.ctx, ticket, _judged(write.flow, ticket))
    )


@router.post(
    "/{ticket_id}/evidence",
    status_code=201,
    response_model=EvidenceOut,
    responses={**ERRORS, 413: {"description": "file too large"}},
)
def post_evidence(
    ticket: WritableTicket,
    write: EventWriter,
    app: App,
    file: Annotated[UploadFile, File(description="the evidence file")],
    note: Annotated[str, Form()] = "",
) -> Response:
    """Upload evidence; it is stored by content and recorded as an evidence_added event."""
    assert ticket.id is not None
    filename = file.filename or "evidence"
    if problem := evidence.text_problem(note, "note", 2000):
        raise InvalidInput([problem])
    now = write.ctx.now()
    row = evidence.store(
        write.session,
        app.settings.evidence_dir,
        file.file,
        media_type=file.content_type or "application/octet-stream",
        filename=filename,
        ticket_id=ticket.id,
        uploader=write.who.name,
        now=now,
        max_bytes=app.settings.evidence_max_bytes,
    )
    ref = f"sha256:{row.sha256}"
    added = EventIn(type="evidence_added", at=now, note=note or filename, evidence=[ref])
    write.flow.add_event(ticket, added, write.actor)
    out = EvidenceOut(
        sha256=row.sha256,
        size=row.size,
        media_type=row.media_type,
        filename=row.filename,
        ref=ref,
        url=f"/api/v1/tickets/{ticket.id}/evidence/{row.sha256}",
    )
    return write.reply(201, out)


@router.get(
    "/{ticket_id}/evidence/{sha256}",
    response_class=StreamingResponse,
    responses={**ERRORS, 200: {"content": {"application/octet-stream": {}}}},
)
def get_evidence(
    ticket: ScopedTicket, sha256: str, session: ReadSession, app: App
) -> StreamingResponse:
    """Download evidence with the same rights as its ticket."""
    assert ticket.id is not None
    link = evidence.linked(session, ticket.id, sha256)
    return StreamingResponse(
        evidence.read_chunks(app.settings.evidence_dir, link.sha256),
        media_type=link.media_type,
        headers={
            "Content-Length": str(link.size),
            "ETag": f'"{link.sha256}"',
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(link.filename)}",
            "X-Content-Type-Options": "nosniff",
        },
    )
