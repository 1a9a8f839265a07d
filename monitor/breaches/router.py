"""HTTP routes for breaches, their review, and findings."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlmodel import Session

from monitor.api import idempotency
from monitor.api.deps import (
    READ_BREACHES,
    READ_FINDINGS,
    REVIEW,
    BreachId,
    Word,
    pool_scope,
    state,
)
from monitor.api.errors import responses
from monitor.api.idempotency import Answer, fingerprint
from monitor.auth.service import Principal
from monitor.breaches.findings import KINDS, list_findings
from monitor.breaches.models import Breach
from monitor.breaches.service import (
    get_breach,
    list_breaches,
    overrun,
    review_breach,
    reviews_of,
)
from monitor.core.db import read_scope
from monitor.core.errors import PreconditionFailed, PreconditionRequired
from monitor.core.timeutil import iso
from monitor.tickets.models import Ticket
from monitor.tickets.schemas import Input

router = APIRouter(tags=["breaches"])
ERRORS = responses("breach")


class ReviewOut(BaseModel):
    id: int
    decision: str
    reason: str
    reviewer: str
    at: str
    supersedes: int | None


class BreachOut(BaseModel):
    id: int
    ticket: int
    external_id: str | None
    pool: str
    severity: str
    target: str
    deadline: str
    detected_at: str
    stop: str | None = Field(description="when the clock stopped; null while it still runs")
    overrun_seconds: float = Field(description="how far past the deadline, now if still running")
    review: str
    reviewed_at: str | None
    reviews: list[ReviewOut]


class BreachPage(BaseModel):
    items: list[BreachOut]
    total: int


class ReviewIn(Input):
    decision: Literal["confirmed", "waived"]
    reason: str = Field(default="", max_length=2000)


class FindingOut(BaseModel):
    id: int
    kind: str
    label: str
    ticket: int | None
    pool: str | None
    detail: str
    opened_at: str
    closed_at: str | None


class FindingPage(BaseModel):
    items: list[FindingOut]
    total: int


def etag(session: Session, breach: Breach) -> str:
    assert breach.id is not None
    return f'"breach-{breach.id}-{len(reviews_of(session, breach.id))}"'


def breach_out(
    session: Session, breach: Breach, ticket: Ticket | None, tz: Any, now: datetime
) -> BreachOut:
    assert breach.id is not None
    stop, late = overrun(session, breach, now)
    return BreachOut(
        stop=iso(stop, tz),
        overrun_seconds=late.total_seconds(),
        id=breach.id,
        ticket=breach.ticket_id,
        external_id=ticket.external_id if ticket else None,
        pool=breach.pool,
        severity=breach.severity,
        target=breach.target,
        deadline=iso(breach.deadline, tz) or "",
        detected_at=iso(breach.detected_at, tz) or "",
        review=breach.review,
        reviewed_at=iso(breach.reviewed_at, tz),
        reviews=[
            ReviewOut(
                id=r.id or 0,
                decision=r.decision,
                reason=r.reason,
                reviewer=r.reviewer,
                at=iso(r.reviewed_at, tz) or "",
                supersedes=r.supersedes_id,
            )
            for r in reviews_of(session, breach.id)
        ],
    )


@router.get("/breaches", response_model=BreachPage, responses=ERRORS)
def get_breaches(
    request: Request,
    who: Annotated[Principal, Depends(READ_BREACHES)],
    pending: bool = False,
    year: Annotated[int | None, Query(ge=2000, le=2100)] = None,
    pool: Word = None,
) -> BreachPage:
    """Breaches still standing; an operator sees only its own pool's."""
    app = state(request)
    scope = pool_scope(who)
    if scope is not None and pool is not None and pool != scope:
        return BreachPage(items=[], total=0)
    with read_scope(app.engine) as session:
        tz = app.settings.tz
        rows = list_breaches(session, pending=pending, year=year, pool=scope or pool, tz=tz)
        items = [breach_out(session, r.breach, r.ticket, tz, app.clock.now()) for r in rows]
    return BreachPage(items=items, total=len(items))


@router.get("/breaches/{breach_id}", response_model=BreachOut, responses=ERRORS)
def get_one_breach(
    breach_id: BreachId,
    request: Request,
    response: Response,
    who: Annotated[Principal, Depends(READ_BREACHES)],
) -> BreachOut:
    """One breach with its reviews; its ETag goes in If-Match when reviewing."""
    app = state(request)
    with read_scope(app.engine) as session:
        breach = get_breach(session, breach_id, pool_scope(who))
        response.headers["ETag"] = etag(session, breach)
        return breach_out(
            session, breach, session.get(Ticket, breach.ticket_id), app.settings.tz, app.clock.now()
        )


@router.post(
    "/breaches/{breach_id}/review",
    response_model=BreachOut,
    responses={
        **ERRORS,
        412: {"description": "If-Match does not match"},
        428: {"description": "If-Match is required"},
    },
)
def post_review(
    breach_id: BreachId,
    body: ReviewIn,
    request: Request,
    who: Annotated[Principal, Depends(REVIEW)],
    if_match: Annotated[str | None, Header(alias="If-Match")] = None,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> JSONResponse:
    """Confirm a breach, or waive it with a reason; needs the breach's current ETag."""
    app = state(request)
    if if_match is None:
        raise PreconditionRequired("If-Match: send the breach's ETag from GET /breaches/{id}")

    def work(session: Session) -> Answer:
        breach = get_breach(session, breach_id, pool_scope(who))
        current = etag(session, breach)
        if if_match.strip() not in (current, "*"):
            raise PreconditionFailed(
                f"If-Match {if_match} is not the current ETag {current}: "
                "someone reviewed it meanwhile"
            )
        review_breach(session, breach, body.decision, body.reason, who.name, app.clock.now())
        out = breach_out(
            session, breach, session.get(Ticket, breach.ticket_id), app.settings.tz, app.clock.now()
        )
        return Answer(200, out.model_dump(mode="json"), {"ETag": etag(session, breach)})

    return idempotency.run(
        app.engine,
        app.clock,
        who,
        idempotency_key,
        fingerprint(
            "POST", f"/breaches/{breach_id}/review", [body.model_dump(mode="json"), if_match]
        ),
        work,
    )


@router.get("/findings", response_model=FindingPage, responses=ERRORS)
def get_findings(
    request: Request,
    who: Annotated[Principal, Depends(READ_FINDINGS)],
    open: bool = True,
    kind: Word = None,
    pool: Word = None,
) -> FindingPage:
    """Data-quality findings; an operator sees only its own pool's."""
    app = state(request)
    scope = pool_scope(who)
    if scope is not None and pool is not None and pool != scope:
        return FindingPage(items=[], total=0)
    tz = app.settings.tz
    with read_scope(app.engine) as session:
        rows = list_findings(session, open_only=open, pool=scope or pool)
        items = [
            FindingOut(
                id=f.id or 0,
                kind=f.kind,
                label=KINDS.get(f.kind, f.kind),
                ticket=f.ticket_id,
                pool=f.pool,
                detail=f.detail,
                opened_at=iso(f.opened_at, tz) or "",
                closed_at=iso(f.closed_at, tz),
            )
            for f in rows
            if kind is None or f.kind == kind
        ]
    return FindingPage(items=items, total=len(items))
