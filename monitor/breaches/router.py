"""HTTP routes for breaches, their review, and findings."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Response
from sqlmodel import Session

from monitor.api.deps import (
    READ_BREACHES,
    READ_FINDINGS,
    App,
    ReadSession,
    ReviewedBreach,
    Reviewer,
    ScopedBreach,
    TicketId,
    Word,
    pool_scope,
    scoped,
)
from monitor.api.errors import responses
from monitor.auth.service import Principal
from monitor.breaches.findings import KINDS, count_findings, list_findings
from monitor.breaches.models import Breach
from monitor.breaches.schemas import (
    BreachOut,
    BreachPage,
    ClearedBy,
    CorrectionDecisionIn,
    CorrectionDecisionOut,
    FindingOut,
    FindingPage,
    ReviewIn,
    ReviewOut,
)
from monitor.breaches.service import (
    cleared_by,
    clearing_event,
    correction_states,
    count_breaches,
    list_breaches,
    overruns,
    reviews_of,
    reviews_of_each,
)
from monitor.core.errors import DomainError, PreconditionFailed, PreconditionRequired
from monitor.core.timeutil import iso
from monitor.sla.vocab import CorrectionState
from monitor.tickets.models import Ticket
from monitor.tickets.service import lock_ticket

router = APIRouter(tags=["breaches"])
# An entity tag as RFC 9110 writes it (optionally weak), or `*`.
ETAG = re.compile(r'\*|(W/)?"[\x21\x23-\x7e]*"')
ERRORS = responses("breach")


def etag(session: Session, breach: Breach) -> str:
    assert breach.id is not None
    return f'"breach-{breach.id}-{len(reviews_of(session, breach.id))}"'


def breach_out(
    session: Session, breach: Breach, ticket: Ticket | None, tz: Any, now: datetime
) -> BreachOut:
    return breach_outs(session, [(breach, ticket)], tz, now)[0]


def breach_outs(
    session: Session,
    rows: Sequence[tuple[Breach, Ticket | None]],
    tz: Any,
    now: datetime,
) -> list[BreachOut]:
    """Each breach as the API shows it; what each needs read for all of them at once (a page
    of 500 breaches: a few reads, not three a breach)."""
    breaches = [row[0] for row in rows]
    ids = [b.id or 0 for b in breaches]
    late = overruns(session, breaches, now)
    disputes = correction_states(session, sorted({b.ticket_id for b in breaches}))
    reviews = reviews_of_each(session, ids)
    out = []
    for breach, ticket in rows:
        assert breach.id is not None
        stop, over = late[breach.id]
        event = clearing_event(session, breach)  # (a cleared breach only)
        out.append(
            BreachOut(
                disputed_by=[
                    f"#{seq}"
                    for seq, d in disputes.get(breach.ticket_id, {}).items()
                    if d.decision == CorrectionState.DISPUTED
                ],
                cleared_at=iso(breach.cleared_at, tz),
                cleared_by=None
                if event is None
                else ClearedBy(
                    seq=event.seq,
                    id=event.client_id or f"#{event.seq}",
                    type=event.type,
                    reason=event.reason,
                    actor=event.actor,
                    recorded_at=iso(event.recorded_at, tz) or "",
                    text=cleared_by(session, breach, tz),
                ),
                stop=iso(stop, tz),
                overrun_seconds=over.total_seconds(),
                id=breach.id,
                ticket=breach.ticket_id,
                external_id=ticket.external_id if ticket else None,
                pool=breach.pool,
                severity=breach.severity,
                target=breach.target,
                deadline=iso(breach.deadline, tz) or "",
                detected_at=iso(breach.detected_at, tz) or "",
                review="cleared" if breach.cleared_at is not None else breach.review,
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
                    for r in reviews.get(breach.id, [])
                ],
            )
        )
    return out


@router.get("/breaches", response_model=BreachPage, responses=ERRORS)
def get_breaches(
    session: ReadSession,
    app: App,
    who: Annotated[Principal, Depends(READ_BREACHES)],
    pending: bool = False,
    year: Annotated[int | None, Query(ge=2000, le=2100)] = None,
    pool: Word = None,
    page: Annotated[int, Query(ge=1, le=100000, description="with per_page")] = 1,
    per_page: Annotated[
        int | None,
        Query(ge=1, le=500, description="breaches a page, oldest first; without it, all"),
    ] = None,
) -> BreachPage:
    """Breaches still standing, oldest first; an operator sees only its own pool's. With
    `per_page`, one page of them and `total` counting all."""
    scope = pool_scope(who)
    if scope is not None and pool is not None and pool != scope:
        return BreachPage(items=[], total=0)
    tz = app.settings.tz
    pool = scope or pool
    if per_page is None:  # every one, as before paging came
        rows = list_breaches(session, pending=pending, year=year, pool=pool, tz=tz)
        total = len(rows)
    else:
        rows = list_breaches(
            session,
            pending=pending,
            year=year,
            pool=pool,
            tz=tz,
            offset=(page - 1) * per_page,
            limit=per_page,
        )
        total = count_breaches(session, pending=pending, year=year, pool=pool, tz=tz)
    pairs = [(r.breach, r.ticket) for r in rows]
    return BreachPage(items=breach_outs(session, pairs, tz, app.clock.now()), total=total)


@router.get("/breaches/{breach_id}", response_model=BreachOut, responses=ERRORS)
def get_one_breach(
    breach: ScopedBreach, session: ReadSession, app: App, response: Response
) -> BreachOut:
    """One breach with its reviews; its ETag goes in If-Match when reviewing."""
    response.headers["ETag"] = etag(session, breach)
    ticket = session.get(Ticket, breach.ticket_id)
    return breach_out(session, breach, ticket, app.settings.tz, app.clock.now())


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
    breach: ReviewedBreach,
    body: ReviewIn,
    write: Reviewer,
    if_match: Annotated[str | None, Header(alias="If-Match")] = None,
) -> Response:
    """Confirm a breach, or waive it with a reason; needs the breach's current ETag."""
    if if_match is None:
        raise PreconditionRequired("If-Match: send the breach's ETag from GET /breaches/{id}")
    if not ETAG.fullmatch(if_match.strip()):
        raise DomainError(
            f"If-Match: {if_match[:80]!r} is malformed; send the ETag exactly as "
            'GET /breaches/{id} gave it, quotes included (e.g. "breach-3-0")'
        )
    current = etag(write.session, breach)
    if if_match.strip() not in (current, "*"):
        raise PreconditionFailed(
            f"If-Match {if_match} is not the current ETag {current}: someone reviewed it meanwhile"
        )
    write.flow.review(breach, body.decision, body.reason, write.who.name)
    ticket = write.session.get(Ticket, breach.ticket_id)
    out = breach_out(write.session, breach, ticket, write.ctx.tz, write.ctx.now())
    return write.reply(200, out, {"ETag": etag(write.session, breach)})


@router.post(
    "/tickets/{ticket_id}/corrections/{seq}/decision",
    response_model=CorrectionDecisionOut,
    responses={**ERRORS, 409: {"description": "already decided"}},
)
def post_correction_decision(
    ticket_id: TicketId,
    seq: Annotated[int, Path(ge=1, le=1_000_000)],
    body: CorrectionDecisionIn,
    write: Reviewer,
) -> Response:
    """Accept or reject, with a reason, a correction that would clear a reviewed breach."""
    ticket = scoped(lock_ticket(write.session, ticket_id), write.who, ticket_id)
    row = write.flow.decide_correction(ticket, seq, body.decision, body.reason, write.who.name)
    out = CorrectionDecisionOut(
        ticket=ticket_id,
        correction=f"#{seq}",
        decision=row.decision,
        reason=row.reason,
        decided_by=row.actor,
        decided_at=iso(row.decided_at, write.ctx.tz) or "",
    )
    return write.reply(200, out)


@router.get("/findings", response_model=FindingPage, responses=ERRORS)
def get_findings(
    session: ReadSession,
    app: App,
    who: Annotated[Principal, Depends(READ_FINDINGS)],
    open: bool = True,
    kind: Word = None,
    pool: Word = None,
    page: Annotated[int, Query(ge=1, le=100000, description="with per_page")] = 1,
    per_page: Annotated[
        int | None,
        Query(ge=1, le=500, description="findings a page, oldest first; without it, all"),
    ] = None,
) -> FindingPage:
    """Data-quality findings, oldest first; an operator sees only its own pool's. With
    `per_page`, one page of them and `total` counting all."""
    scope = pool_scope(who)
    if scope is not None and pool is not None and pool != scope:
        return FindingPage(items=[], total=0)
    tz = app.settings.tz
    pool = scope or pool
    offset = 0 if per_page is None else (page - 1) * per_page
    rows = list_findings(
        session, open_only=open, pool=pool, kind=kind, offset=offset, limit=per_page
    )
    if per_page is None:  # every one, as before paging came
        total = len(rows)
    else:
        counts = count_findings(session, open_only=open, pool=pool)
        total = counts.get(kind, 0) if kind is not None else sum(counts.values())
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
    ]
    return FindingPage(items=items, total=total)
