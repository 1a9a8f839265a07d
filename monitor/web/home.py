"""总览: what each role needs first."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from monitor.web.deps import Anyone, PageRoute
from monitor.web.render import render

router = APIRouter(route_class=PageRoute)


@router.get("/", response_class=HTMLResponse)
def home(request: Request, who: Anyone) -> HTMLResponse:
    return render(request, "home.html", {"title": "总览"})
