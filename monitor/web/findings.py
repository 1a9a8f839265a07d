"""数据质量: open findings for the supervision unit, and for an operator its own pool's."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from monitor.api.deps import AppState, state
from monitor.breaches.findings import count_findings, list_findings
from monitor.core.db import read_scope
from monitor.sla.vocab import FINDING_LABELS
from monitor.web.deps import FindingReader, PageRoute, scope_of
from monitor.web.render import render

router = APIRouter(route_class=PageRoute)
SHOWN = 500


@router.get("/findings", response_class=HTMLResponse)
def findings(
    request: Request,
    who: FindingReader,
    kind: Annotated[str, Query(max_length=32)] = "",
    closed: Annotated[bool, Query()] = False,
) -> HTMLResponse:
    app: AppState = state(request)
    with read_scope(app.engine) as session:
        # Counted by the database; only the newest SHOWN read.
        counts = count_findings(session, open_only=not closed, pool=scope_of(who))
        rows = list_findings(
            session,
            open_only=not closed,
            pool=scope_of(who),
            kind=kind or None,
            newest_first=True,
            limit=SHOWN,
        )
    return render(
        request,
        "findings.html",
        {
            "title": "数据质量",
            "rows": rows,
            "total": counts.get(kind, 0) if kind else sum(counts.values()),
            "shown": SHOWN,
            "counts": counts,
            "kind": kind,
            "closed": closed,
            "kinds": list(FINDING_LABELS.items()),
        },
    )
