"""通知: the notices sent to the people on duty, failed ones first to hand, and retrying them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from monitor.api.deps import AppState, state
from monitor.core.db import read_scope, session_scope
from monitor.notifications.models import DELIVERY_LABELS, KIND_LABELS
from monitor.notifications.routing import EVERYONE
from monitor.notifications.service import list_notices, retry_notice
from monitor.web.deps import Csrf, PageRoute, SignedIn, page_user
from monitor.web.render import render

router = APIRouter(route_class=PageRoute)
# The supervision unit receives breach and review notices; admins run the channels.
NoticeReader = Annotated[SignedIn, Depends(page_user("supervisor", "admin"))]
SHOWN = 200


@router.get("/notifications", response_class=HTMLResponse)
def notifications(
    request: Request, who: NoticeReader, failed: Annotated[bool, Query()] = False
) -> HTMLResponse:
    app: AppState = state(request)
    with read_scope(app.engine) as session:
        rows = list_notices(session, failed=failed, limit=SHOWN)
    return render(
        request,
        "notifications.html",
        {
            "title": "通知",
            "rows": rows,
            "failed": failed,
            "kinds": KIND_LABELS,
            "states": DELIVERY_LABELS,
            "everyone": EVERYONE,
            "can_retry": who.principal.role == "admin",
        },
    )


@router.post("/notifications/{notice_id}/retry", dependencies=[Csrf])
async def retry(
    request: Request,
    who: Annotated[SignedIn, Depends(page_user("admin"))],
    notice_id: Annotated[int, Path(ge=1, le=2_147_483_647)],
) -> Response:
    """Failed deliveries go back in the queue; the scheduler sends them at once."""
    app: AppState = state(request)

    def work() -> None:
        with session_scope(app.engine) as session:
            retry_notice(session, notice_id, app.clock.now())

    await run_in_threadpool(work)
    return RedirectResponse("/notifications?failed=true", status_code=303)
