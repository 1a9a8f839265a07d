"""工单: the search, a ticket's page, and the operators' forms over the ticket services."""

from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from pydantic import ValidationError
from sqlmodel import Session
from starlette.datastructures import FormData

from monitor.api.deps import MAX_ID, AppState, actor_of, scoped, state
from monitor.breaches.service import list_breaches
from monitor.core.db import read_scope
from monitor.core.errors import InvalidInput, NotFound, Problem
from monitor.core.timeutil import human_duration, parse_instant, show
from monitor.evidence import service as evidence
from monitor.sla.vocab import EVENT_LABELS, EVENT_TYPES, SOURCE_LABELS
from monitor.tickets.models import Ticket
from monitor.tickets.schemas import EventIn, TicketIn
from monitor.tickets.search import search_tickets
from monitor.tickets.service import find_ticket, lock_ticket
from monitor.tickets.service import ticket_out as ticket_view
from monitor.web.deps import (
    Anyone,
    Csrf,
    PageRoute,
    SignedIn,
    TicketWriter,
    Writer,
    scope_of,
    writing,
)
from monitor.web.messages import TIME_HINT, field_errors, problems_of
from monitor.web.render import names_for, render

router = APIRouter(route_class=PageRoute)
PER_PAGE = 20
# Event types a person adds with the event form (reported comes with the ticket; corrections
# and evidence have their own forms).
FORM_EVENTS = [t for t in EVENT_TYPES if t not in ("reported", "correction", "evidence_added")]
# Entered this long after it happened, an event's recorded time is pointed out on its page.
LATE_NOTICE = timedelta(hours=1)
MAX_TEXT = {"title": 500, "description": 20000, "note": 10000, "reason": 2000, "external_id": 128}


def ticket_in_scope(session: Session, ticket_id: int, who: SignedIn, lock: bool = False) -> Ticket:
    """The ticket if this person may see it; another pool's answers as if it did not exist."""
    found = None
    if 1 <= ticket_id <= MAX_ID:
        found = lock_ticket(session, ticket_id) if lock else session.get(Ticket, ticket_id)
    return scoped(found, who.principal, ticket_id)


def _when(value: str, field: str, tz: Any) -> tuple[datetime | None, Problem | None]:
    try:
        return parse_instant(value.strip().replace("/", "-"), tz), None
    except ValueError:
        return None, Problem(field, TIME_HINT if value.strip() else "请填写时间")


def _now_text(app: AppState) -> str:
    return app.clock.now().astimezone(app.settings.tz).strftime("%Y-%m-%d %H:%M")


# --- search -----------------------------------------------------------------------------


def _day(value: str, field: str, errors: dict[str, str]) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        errors[field] = "请按 2022-08-10 的格式填写日期"
        return None


@router.get("/tickets", response_class=HTMLResponse)
def search(
    request: Request,
    who: Anyone,
    q: Annotated[str, Query(max_length=200)] = "",
    pool: Annotated[str, Query(max_length=32)] = "",
    severity: Annotated[str, Query(max_length=32)] = "",
    status: Annotated[str, Query(max_length=16)] = "",
    breached: Annotated[str, Query(max_length=3)] = "",
    date_from: Annotated[str, Query(max_length=10)] = "",
    date_to: Annotated[str, Query(max_length=10)] = "",
    page: Annotated[int, Query(ge=1, le=100000)] = 1,
) -> Response:
    """Search; an id or external id alone jumps straight to its ticket."""
    app: AppState = state(request)
    tz = app.settings.tz
    scope = scope_of(who)
    names = names_for(request)
    q = q.replace("\x00", "").strip()
    filters = {"pool": pool, "severity": severity, "status": status, "breached": breached}
    errors: dict[str, str] = {}
    if pool and pool not in names.pools:
        errors["pool"] = "未知的资源池"
    if severity and severity not in names.severities:
        errors["severity"] = "未知的故障级别"
    if status and status not in ("open", "resolved", "closed"):
        errors["status"] = "请从列表中选择"
    if breached not in ("", "yes", "no"):
        errors["breached"] = "请从列表中选择"
    start, end = _day(date_from, "date_from", errors), _day(date_to, "date_to", errors)
    with read_scope(app.engine) as session:
        jump = "HX-Request" not in request.headers  # a filter changed in place: stay on the list
        if jump and q and not any(filters.values()) and not (date_from or date_to) and page == 1:
            try:
                found = find_ticket(session, q, scope)
                return RedirectResponse(f"/tickets/{found.id}", status_code=303)
            except NotFound:
                pass
        rows: list[Any] = []
        total, exact = 0, True
        if not errors:
            matches = search_tickets(
                session,
                pool=scope or pool or None,
                severity=severity or None,
                status=status or None,
                breached={"yes": True, "no": False}.get(breached),
                reported_from=datetime.combine(start, time(), tz) if start else None,
                reported_to=datetime.combine(end, time(), tz) + timedelta(days=1, microseconds=-1)
                if end
                else None,
                q=q or None,
                page=page,
                per_page=PER_PAGE,
                tz=tz,
            )
            rows, total, exact = matches.rows, matches.total, matches.exact
            if scope is not None and pool and pool != scope:
                rows, total, exact = [], 0, True
    values = {**filters, "date_from": date_from, "date_to": date_to}

    def params(n: int) -> str:
        return urlencode({"q": q, **values, "page": n})

    return render(
        request,
        "search.html",
        {
            "title": "工单查询",
            "rows": rows,
            "total": total,
            "exact": exact,
            "page": page,
            # Past the counted matches there are more pages while a page comes back full.
            "pages": max(1, math.ceil(total / PER_PAGE), page + (len(rows) == PER_PAGE))
            if not exact
            else max(1, math.ceil(total / PER_PAGE)),
            "params": params,
            "values": values,
            "errors": errors,
            "query": q,
            "scope": scope,
        },
        status_code=422 if errors else 200,
    )


# --- one ticket ---------------------------------------------------------------------------


def _ticket_page(
    request: Request,
    who: SignedIn,
    ticket_id: int,
    *,
    form: str = "",
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    done: str = "",
) -> HTMLResponse:
    app: AppState = state(request)
    with read_scope(app.engine) as session:
        ctx = app.contexts.get(session)
        ticket = ticket_in_scope(session, ticket_id, who)
        view = ticket_view(session, ctx, ticket)
        breaches = list_breaches(session, pool=ticket.pool, ticket_id=ticket.id)
    by_target = {row.breach.target: row.breach for row in breaches}
    tz = app.settings.tz
    may_write = who.principal.role in ("operator", "supervisor", "admin")
    events_by_id = {e.id: e for e in view.events}
    return render(
        request,
        "ticket.html",
        {
            "title": f"工单 {view.external_id or view.id}",
            "t_": view,
            "breaches": by_target,
            "may_write": may_write,
            "form": form,
            "values": values or {"at": _now_text(app)},
            "errors": errors or {},
            "done": done,
            "event_options": [(t, EVENT_LABELS[t]) for t in FORM_EVENTS],
            "correctable": [
                (e.id, f"事件 {e.id}：{EVENT_LABELS[e.type]} {show(parse_instant(e.at, tz), tz)}")
                for e in view.events
                if e.type != "correction"
            ],
            "events_by_id": events_by_id,
            "corrected": {e.corrects for e in view.events if e.corrects},
            "late": {
                e.id: human_duration(lag)
                for e in view.events
                if (lag := datetime.fromisoformat(e.recorded_at) - datetime.fromisoformat(e.at))
                > LATE_NOTICE
                and e.type != "correction"
            },
        },
        status_code=422 if errors else 200,
    )


@router.get("/tickets/{ticket_id}", response_class=HTMLResponse)
def ticket_page(request: Request, who: Anyone, ticket_id: int, done: str = "") -> HTMLResponse:
    return _ticket_page(request, who, ticket_id, done=done[:20])


def _event_problem_field(loc: str) -> str:
    return loc.split("[")[0].split(".")[0]


@router.post("/tickets/{ticket_id}/events", dependencies=[Csrf])
async def post_event(request: Request, who: Writer, ticket_id: int) -> Response:
    """Add an event or a correction; a bad field is shown beside it and nothing is written."""
    form = await request.form()
    return await run_in_threadpool(_post_event, request, who, ticket_id, form)


def _post_event(request: Request, who: SignedIn, ticket_id: int, form: FormData) -> Response:
    app: AppState = state(request)
    values = {
        k: str(form.get(k, ""))[:20000]
        for k in ("kind", "type", "at", "note", "evidence", "severity", "corrects", "reason")
    }
    kind = "correction" if values["kind"] == "correction" else "event"
    fields = ["type", "at", "note", "evidence", "severity", "corrects", "reason"]
    at, bad_time = _when(values["at"], "at", app.settings.tz)
    problems: list[tuple[str, str]] = [(bad_time.loc, bad_time.msg)] if bad_time else []
    data: EventIn | None = None
    if kind == "correction" and not values["reason"].strip():
        problems.append(("reason", "更正必须填写理由"))
    if kind == "event" and values["type"] not in FORM_EVENTS:
        problems.append(("type", "请从列表中选择事件类型"))
    if not problems:
        body: dict[str, Any] = {
            "type": "correction" if kind == "correction" else values["type"],
            "at": at,
            "note": values["note"],
        }
        if kind == "correction":
            body |= {"corrects": values["corrects"], "reason": values["reason"]}
        else:
            body["evidence"] = [x.strip() for x in values["evidence"].splitlines() if x.strip()]
            if values["type"] == "severity_changed":
                body["severity"] = values["severity"]
        try:
            data = EventIn.model_validate(body)
        except ValidationError as exc:
            problems += problems_of(exc)
    if data is not None:
        try:
            with writing(request) as flow:
                ticket = ticket_in_scope(flow.session, ticket_id, who, lock=True)
                flow.add_event(ticket, data, actor_of(who.principal))
        except InvalidInput as exc:
            problems += problems_of(exc)
    if problems:
        errors = field_errors(problems, _event_problem_field, fields)
        return _ticket_page(request, who, ticket_id, form=kind, values=values, errors=errors)
    return RedirectResponse(f"/tickets/{ticket_id}?done={kind}#timeline", status_code=303)


@router.post("/tickets/{ticket_id}/evidence", dependencies=[Csrf])
async def post_evidence(request: Request, who: Writer, ticket_id: int) -> Response:
    """Upload a file as evidence: stored by content, recorded as an evidence_added event."""
    form = await request.form()
    return await run_in_threadpool(_post_evidence, request, who, ticket_id, form)


def _post_evidence(request: Request, who: SignedIn, ticket_id: int, form: FormData) -> Response:
    app: AppState = state(request)
    upload = form.get("file")
    note = str(form.get("note", ""))
    values = {"note": note[:2000]}
    problems: list[tuple[str, str]] = []
    if len(note) > 2000:
        problems.append(("note", "最多 2000 个字"))
    if upload is None or isinstance(upload, str) or not upload.filename:
        problems.append(("file", "请选择要上传的文件"))
    if not problems and upload is not None and not isinstance(upload, str):
        filename = (upload.filename or "evidence")[:255]
        try:
            with writing(request) as flow:
                ticket = ticket_in_scope(flow.session, ticket_id, who, lock=True)
                flow.attach_evidence(
                    ticket,
                    upload.file,
                    media_type=upload.content_type or "application/octet-stream",
                    filename=filename,
                    note=note,
                    actor=actor_of(who.principal),
                )
        except evidence.TooLarge:
            limit = app.settings.evidence_max_bytes // (1024 * 1024)
            problems.append(("file", f"文件超过 {limit} MB 的上限"))
        except InvalidInput as exc:
            problems += problems_of(exc)
    if problems:
        errors = field_errors(problems, _event_problem_field, ["file", "note"])
        return _ticket_page(request, who, ticket_id, form="evidence", values=values, errors=errors)
    return RedirectResponse(f"/tickets/{ticket_id}?done=evidence#timeline", status_code=303)


@router.get("/tickets/{ticket_id}/evidence/{sha256}")
def get_evidence(request: Request, who: Anyone, ticket_id: int, sha256: str) -> Response:
    """Download evidence with the rights of its ticket."""
    app: AppState = state(request)
    with read_scope(app.engine) as session:
        ticket_in_scope(session, ticket_id, who)
        link = evidence.linked(session, ticket_id, sha256[:64])
    return StreamingResponse(
        evidence.read_chunks(app.settings.evidence_dir, link.sha256),
        media_type=link.media_type,
        headers={
            "Content-Length": str(link.size),
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(link.filename)}",
            "X-Content-Type-Options": "nosniff",
        },
    )


# --- new ticket -------------------------------------------------------------------------

NEW_FIELDS = [
    "pool",
    "external_id",
    "severity",
    "title",
    "description",
    "source",
    "units",
    "systems",
    "reported_at",
    "note",
]


def _new_form(
    request: Request, who: SignedIn, values: dict[str, Any], errors: dict[str, str]
) -> HTMLResponse:
    app: AppState = state(request)
    with read_scope(app.engine) as session:
        ctx = app.contexts.get(session)
    scope = scope_of(who)
    pools = [(p.id, p.name) for p in ctx.catalog.pools if scope is None or p.id == scope]
    return render(
        request,
        "ticket_new.html",
        {
            "title": "登记故障",
            "values": values,
            "errors": errors,
            "pools": pools,
            "sources": list(SOURCE_LABELS.items()),
            "units": [(u.id, u.name) for u in ctx.catalog.units],
            "systems": [
                (s.id, s.name) for s in ctx.catalog.systems if scope is None or s.pool == scope
            ],
        },
        status_code=422 if errors else 200,
    )


@router.get("/tickets-new", response_class=HTMLResponse)
def new_ticket_form(request: Request, who: TicketWriter) -> HTMLResponse:
    app: AppState = state(request)
    pool = scope_of(who) or ""
    values = {"pool": pool, "severity": "", "source": "user_report", "reported_at": _now_text(app)}
    return _new_form(request, who, values, {})


def _new_problem_field(loc: str) -> str:
    if loc.startswith("events"):
        return "reported_at" if loc.endswith(".at") or loc == "events" else "note"
    return loc.split("[")[0].split(".")[0]


@router.post("/tickets-new", dependencies=[Csrf])
async def new_ticket(request: Request, who: TicketWriter) -> Response:
    """Create a ticket with its reported event; bad fields are shown and nothing is written."""
    form = await request.form()
    return await run_in_threadpool(_new_ticket, request, who, form)


def _new_ticket(request: Request, who: SignedIn, form: FormData) -> Response:
    app: AppState = state(request)
    values: dict[str, Any] = {
        k: str(form.get(k, ""))[: MAX_TEXT.get(k, 200) + 1]
        for k in NEW_FIELDS
        if k not in ("units", "systems")
    }
    values["units"] = [str(v)[:64] for v in form.getlist("units")][:50]
    values["systems"] = [str(v)[:64] for v in form.getlist("systems")][:50]
    at, bad_time = _when(values["reported_at"], "reported_at", app.settings.tz)
    problems: list[tuple[str, str]] = [(bad_time.loc, bad_time.msg)] if bad_time else []
    if not values["severity"]:
        problems.append(("severity", "请选择故障级别"))
    data: TicketIn | None = None
    if not problems:
        try:
            data = TicketIn.model_validate(
                {
                    "external_id": values["external_id"].strip() or None,
                    "pool": values["pool"],
                    "severity": values["severity"],
                    "title": values["title"].strip(),
                    "description": values["description"],
                    "source": values["source"],
                    "units": values["units"],
                    "systems": values["systems"],
                    "events": [{"type": "reported", "at": at, "note": values["note"]}],
                }
            )
        except ValidationError as exc:
            problems += problems_of(exc)
    ticket_id = None
    if data is not None:
        try:
            with writing(request) as flow:
                ticket_id = flow.create_ticket(data, actor_of(who.principal)).id
        except InvalidInput as exc:
            problems += problems_of(exc)
    if problems or ticket_id is None:
        return _new_form(
            request, who, values, field_errors(problems, _new_problem_field, NEW_FIELDS)
        )
    return RedirectResponse(f"/tickets/{ticket_id}?done=created", status_code=303)
