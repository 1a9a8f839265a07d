"""HTTP routes for tickets, their events and their evidence."""

from __future__ import annotations

import hashlib
from datetime import datetime
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Header, Query, Request, UploadFile
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel

from monitor.api import idempotency
from monitor.api.deps import (
    EVENT_SOURCE,
    READ_TICKETS,
    WRITE_EVENTS,
    WRITE_TICKETS,
    AppState,
    TicketId,
    Word,
    pool_scope,
    state,
)
from monitor.api.errors import responses
from monitor.api.idempotency import Answer, fingerprint
from monitor.auth.service import Principal
from monitor.core.db import read_scope
from monitor.core.errors import TicketNotFound
from monitor.evidence import service as evidence
from monitor.sla.vocab import TicketSource
from monitor.tickets.models import Ticket
from monitor.tickets.schemas import EventIn, TicketIn, TicketOut
from monitor.tickets.service import (
    Actor,
    add_event,
    create_ticket,
    search_tickets,
    target_order,
    ticket_out,
)

router = APIRouter(prefix="/tickets", tags=["tickets"])
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key", description="retry-safe writes")]
ERRORS = responses("ticket")


class TargetBrief(BaseModel):
    id: str
    status: str
    deadline: str | None


class TicketSummary(BaseModel):
    id: int
    external_id: str | None
    pool: str
    severity: str
    title: str
    source: str
    status: str
    reported_at: str
    breached: bool
    targets: list[TargetBrief]


class TicketPage(BaseModel):
    items: list[TicketSummary]
    total: int
    page: int
    per_page: int


class EvidenceOut(BaseModel):
    sha256: str
    size: int
    media_type: str
    filename: str
    ref: str
    url: str


def _rank(ctx: Any, ticket: Ticket, state: Any) -> int:
    return target_order(ctx, ticket, state.target)


def _actor(who: Principal) -> Actor:
    return Actor(who.name, who.role, EVENT_SOURCE[who.role], pool_scope(who))


def _get(session: Any, ticket_id: int, who: Principal) -> Ticket:
    ticket = session.get(Ticket, ticket_id)
    scope = pool_scope(who)
    if ticket is None or (scope is not None and ticket.pool != scope):
        raise TicketNotFound(f"no ticket {ticket_id}")
    return ticket


@router.post("", status_code=201, response_model=TicketOut, responses=ERRORS)
def post_ticket(
    body: TicketIn,
    request: Request,
    who: Annotated[Principal, Depends(WRITE_TICKETS)],
    idempotency_key: IdemKey = None,
) -> JSONResponse:
    """Create a ticket with its events (the import format); deadlines are judged at once."""
    app: AppState = state(request)

    def work(session: Any) -> Answer:
        ctx = app.contexts.get(session)
        ticket = create_ticket(session, ctx, body, _actor(who))
        out = ticket_out(session, ctx, ticket)
        return Answer(
            201, out.model_dump(mode="json"), {"Location": f"/api/v1/tickets/{ticket.id}"}
        )

    return idempotency.run(
        app.engine,
        app.clock,
        who,
        idempotency_key,
        fingerprint("POST", "/tickets", body.model_dump(mode="json")),
        work,
    )


@router.get("", response_model=TicketPage, responses=ERRORS)
def list_tickets(
    request: Request,
    who: Annotated[Principal, Depends(READ_TICKETS)],
    pool: Word = None,
    severity: Word = None,
    status: Annotated[str | None, Query(pattern="^(open|resolved|closed)$")] = None,
    breached: bool | None = None,
    reported_from: datetime | None = None,
    reported_to: datetime | None = None,
    q: Annotated[
        str | None,
        Query(
            max_length=200,
            pattern=r"^[^\x00]*$",
            description="id, external id or a word of the title",
        ),
    ] = None,
    source: TicketSource | None = None,
    page: Annotated[int, Query(ge=1, le=100000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=500)] = 50,
) -> TicketPage:
    """Find tickets; an operator sees only its own pool."""
    app = state(request)
    scope = pool_scope(who)
    with read_scope(app.engine) as session:
        ctx = app.contexts.get(session)
        if scope is not None and pool is not None and pool != scope:
            return TicketPage(items=[], total=0, page=page, per_page=per_page)
        rows, total = search_tickets(
            session,
            pool=scope or pool,
            severity=severity,
            status=status,
            breached=breached,
            reported_from=reported_from,
            reported_to=reported_to,
            q=q,
            source=source,
            page=page,
            per_page=per_page,
            tz=ctx.tz,
        )
        items = [
            TicketSummary(
                id=t.id or 0,
                external_id=t.external_id,
                pool=t.pool,
                severity=t.current_severity,
                title=t.title,
                source=t.source,
                status=t.status,
                reported_at=t.reported_at.astimezone(ctx.tz).isoformat(),
                breached=any(s.status == "breached" for s in states),
                targets=[
                    TargetBrief(
                        id=s.target,
                        status=s.status,
                        deadline=s.deadline.astimezone(ctx.tz).isoformat() if s.deadline else None,
                    )
                    for s in sorted(states, key=partial(_rank, ctx, t))
                ],
            )
            for t, states in rows
        ]
    return TicketPage(items=items, total=total, page=page, per_page=per_page)


@router.get("/{ticket_id}", response_model=TicketOut, responses=ERRORS)
def get_ticket(
    ticket_id: TicketId, request: Request, who: Annotated[Principal, Depends(READ_TICKETS)]
) -> TicketOut:
    """One ticket with its events and each target's state and explanation."""
    app = state(request)
    with read_scope(app.engine) as session:
        ctx = app.contexts.get(session)
        return ticket_out(session, ctx, _get(session, ticket_id, who))


@router.post("/{ticket_id}/events", status_code=201, response_model=TicketOut, responses=ERRORS)
def post_event(
    ticket_id: TicketId,
    body: EventIn,
    request: Request,
    who: Annotated[Principal, Depends(WRITE_EVENTS)],
    idempotency_key: IdemKey = None,
) -> JSONResponse:
    """Append an event (or a correction); the ticket is re-judged in the same transaction."""
    app = state(request)

    def work(session: Any) -> Answer:
        ctx = app.contexts.get(session)
        ticket = _get(session, ticket_id, who)
        add_event(session, ctx, ticket, body, _actor(who))
        return Answer(201, ticket_out(session, ctx, ticket).model_dump(mode="json"))

    return idempotency.run(
        app.engine,
        app.clock,
        who,
        idempotency_key,
        fingerprint("POST", f"/tickets/{ticket_id}/events", body.model_dump(mode="json")),
        work,
    )


@router.post(
    "/{ticket_id}/evidence",
    status_code=201,
    response_model=EvidenceOut,
    responses={**ERRORS, 413: {"description": "file too large"}},
)
def post_evidence(
    ticket_id: TicketId,
    request: Request,
    who: Annotated[Principal, Depends(WRITE_EVENTS)],
    file: Annotated[UploadFile, File(description="the evidence file")],
    note: Annotated[str, Form(max_length=2000)] = "",
    idempotency_key: IdemKey = None,
) -> JSONResponse:
    """Upload evidence; it is stored by content and recorded as an evidence_added event."""
    app = state(request)
    digest = hashlib.sha256()
    while chunk := file.file.read(1024 * 1024):
        digest.update(chunk)
    file.file.seek(0)
    filename = file.filename or "evidence"

    def work(session: Any) -> Answer:
        ctx = app.contexts.get(session)
        ticket = _get(session, ticket_id, who)
        row = evidence.store(
            session,
            app.settings.evidence_dir,
            file.file,
            media_type=file.content_type or "application/octet-stream",
            filename=filename,
            ticket_id=ticket_id,
            uploader=who.name,
            now=app.clock.now(),
            max_bytes=app.settings.evidence_max_bytes,
        )
        ref = f"sha256:{row.sha256}"
        add_event(
            session,
            ctx,
            ticket,
            EventIn(
                type="evidence_added", at=app.clock.now(), note=note or filename, evidence=[ref]
            ),
            _actor(who),
        )
        out = EvidenceOut(
            sha256=row.sha256,
            size=row.size,
            media_type=row.media_type,
            filename=filename,
            ref=ref,
            url=f"/api/v1/tickets/{ticket_id}/evidence/{row.sha256}",
        )
        return Answer(201, out.model_dump(mode="json"))

    return idempotency.run(
        app.engine,
        app.clock,
        who,
        idempotency_key,
        fingerprint("POST", f"/tickets/{ticket_id}/evidence", [digest.hexdigest(), filename, note]),
        work,
    )


@router.get(
    "/{ticket_id}/evidence/{sha256}",
    response_class=StreamingResponse,
    responses={**ERRORS, 200: {"content": {"application/octet-stream": {}}}},
)
def get_evidence(
    ticket_id: TicketId,
    sha256: str,
    request: Request,
    who: Annotated[Principal, Depends(READ_TICKETS)],
) -> StreamingResponse:
    """Download evidence with the same rights as its ticket."""
    app = state(request)
    with read_scope(app.engine) as session:
        _get(session, ticket_id, who)
        row, link = evidence.linked(session, ticket_id, sha256)
    return StreamingResponse(
        evidence.read_chunks(app.settings.evidence_dir, row.sha256),
        media_type=row.media_type,
        headers={
            "Content-Length": str(row.size),
            "ETag": f'"{row.sha256}"',
            "Content-Disposition": f"attachment; filename*=UTF-8''{_quote(link.filename)}",
        },
    )


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name)
