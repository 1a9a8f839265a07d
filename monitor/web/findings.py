"""数据质量: open findings for the supervision unit, and for an operator its own pool's."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from monitor.api.deps import AppState, state
from monitor.breaches.findings import list_findings
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
        rows = list_findings(session, open_only=not closed, pool=scope_of(who))
    counts: dict[str, int] = {}
    for f in rows:
        counts[f.kind] = counts.get(f.kind, 0) + 1
    if kind:
        rows = [f for f in rows if f.kind == kind]
    rows.sort(key=lambda f: f.opened_at, reverse=True)
    return render(
        request,
        "findings.html",
        {
            "title": "数据质量",
            "rows": rows[:SHOWN],
            "total": len(rows),
            "shown": SHOWN,
            "counts": counts,
            "kind": kind,
            "closed": closed,
            "kinds": list(FINDING_LABELS.items()),
        },
    )
