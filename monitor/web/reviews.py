"""违约审核: breaches awaiting review, the supervision unit's decision, and the record of it."""

from __future__ import annotations

import math
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from monitor.api.deps import MAX_ID, AppState, state
from monitor.breaches.service import (
    count_breaches,
    get_breach,
    list_breaches,
    overrun,
    overruns,
    reviews_of,
)
from monitor.core.db import read_scope
from monitor.core.errors import DomainError, InvalidInput, NotFound
from monitor.sla.service import SlaContext
from monitor.tickets.models import Ticket
from monitor.web.deps import Anyone, Csrf, PageRoute, Reviewer, SignedIn, scope_of, writing
from monitor.web.messages import field_errors, problems_of
from monitor.web.render import render

router = APIRouter(route_class=PageRoute)
PER_PAGE = 50
DECISIONS = [("confirmed", "确认违约"), ("waived", "豁免（须说明理由）")]


class ReviewedMeanwhile(Exception):
    """Someone reviewed the breach after this form was opened (the API answers 412)."""


def target_name(ctx: SlaContext, ticket: Ticket, target: str) -> str:
    """The target's name in the policy version the ticket is judged by."""
    severity = ctx.policies.version(ticket.policy_version).severities.get(ticket.current_severity)
    found = next((t.name for t in severity.targets if t.id == target), None) if severity else None
    return found or target


@router.get("/breaches", response_class=HTMLResponse)
def breaches(
    request: Request,
    who: Anyone,
    show: Annotated[str, Query(pattern="^(pending|reviewed)$")] = "pending",
    year: Annotated[int | None, Query(ge=2000, le=2100)] = None,
    page: Annotated[int, Query(ge=1, le=100000)] = 1,
) -> HTMLResponse:
    """Pending breaches first; the reviewed ones with their latest decision."""
    app: AppState = state(request)
    with read_scope(app.engine) as session:
        ctx = app.contexts.get(session)
        # The reviewed ones with the latest decision first; one page read, the rest counted.
        pending, reviewed, pool = show == "pending", show == "reviewed", scope_of(who)
        total = count_breaches(
            session, pending=pending, reviewed=reviewed, year=year, pool=pool, tz=ctx.tz
        )
        shown = list_breaches(
            session,
            pending=pending,
            reviewed=reviewed,
            year=year,
            pool=pool,
            tz=ctx.tz,
            offset=(page - 1) * PER_PAGE,
            limit=PER_PAGE,
        )
        late = overruns(session, [r.breach for r in shown], ctx.now())
        items = [
            {
                "row": r,
                "target": target_name(ctx, r.ticket, r.breach.target),
                "overrun": late[r.breach.id or 0][1].total_seconds(),
            }
            for r in shown
        ]

    def params(n: int) -> str:
        return urlencode({"show": show, "year": year or "", "page": n})

    return render(
        request,
        "breaches.html",
        {
            "title": "违约审核",
            "items": items,
            "show": show,
            "year": year,
            "total": total,
            "page": page,
            "pages": max(1, math.ceil(total / PER_PAGE)),
            "params": params,
        },
    )


def _breach_page(
    request: Request,
    who: SignedIn,
    breach_id: int,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    done: bool = False,
) -> HTMLResponse:
    app: AppState = state(request)
    if not 1 <= breach_id <= MAX_ID:
        raise NotFound(f"no breach {breach_id}")
    with read_scope(app.engine) as session:
        ctx = app.contexts.get(session)
        breach = get_breach(session, breach_id, scope_of(who))
        ticket = session.get(Ticket, breach.ticket_id)
        assert ticket is not None
        stop, late = overrun(session, breach, ctx.now())
        history = reviews_of(session, breach_id)
    return render(
        request,
        "breach.html",
        {
            "title": f"违约 #{breach_id}",
            "b": breach,
            "ticket": ticket,
            "target": target_name(ctx, ticket, breach.target),
            "stop": stop,
            "late": late.total_seconds(),
            "history": list(reversed(history)),
            "last_review": history[-1].id if history else 0,
            "may_review": who.principal.role in ("supervisor", "admin"),
            "decisions": DECISIONS,
            "values": values or {},
            "errors": errors or {},
            "done": done,
        },
        status_code=422 if errors else 200,
    )


@router.get("/breaches/{breach_id}", response_class=HTMLResponse)
def breach_page(request: Request, who: Anyone, breach_id: int, done: str = "") -> HTMLResponse:
    return _breach_page(request, who, breach_id, done=bool(done))


@router.post("/breaches/{breach_id}/review", dependencies=[Csrf])
async def review(request: Request, who: Reviewer, breach_id: int) -> Response:
    """Confirm or waive under the reviewer's own name; never over a review made meanwhile."""
    form = await request.form()
    return await run_in_threadpool(_review, request, who, breach_id, form)


def _review(request: Request, who: SignedIn, breach_id: int, form: FormData) -> Response:
    values: dict[str, Any] = {
        k: str(form.get(k, ""))[:2001] for k in ("decision", "reason", "last_review")
    }
    problems: list[tuple[str, str]] = []
    if values["decision"] not in ("confirmed", "waived"):
        problems.append(("decision", "请选择审核结论"))
    elif values["decision"] == "waived" and not values["reason"].strip():
        problems.append(("reason", "豁免必须说明理由"))
    if len(values["reason"]) > 2000:
        problems.append(("reason", "最多 2000 个字"))
    if not problems and 1 <= breach_id <= MAX_ID:
        try:
            with writing(request) as flow:
                breach = get_breach(flow.session, breach_id, scope_of(who))
                history = reviews_of(flow.session, breach_id)
                seen = str(history[-1].id) if history else "0"
                if values["last_review"] != seen:
                    raise ReviewedMeanwhile(history[-1].reviewer)
                flow.review(breach, values["decision"], values["reason"], who.principal.name)
        except ReviewedMeanwhile as exc:
            problems.append(
                ("", f"在您打开本页后，{exc.args[0]} 已审核此违约，请查看最新记录后再提交。")
            )
        except InvalidInput as exc:
            problems += problems_of(exc)
        except NotFound:
            raise
        except DomainError:
            problems.append(("", "该违约已被更正撤销，无需审核。"))
    if problems:
        errors = field_errors(problems, lambda loc: loc, ["decision", "reason"])
        return _breach_page(request, who, breach_id, values=values, errors=errors)
    return RedirectResponse(f"/breaches/{breach_id}?done=1", status_code=303)
