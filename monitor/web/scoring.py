"""年度评分: the indicator with its evidence, and the evaluators' spreadsheet to download."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, Response

from monitor.api.deps import AppState, state
from monitor.core.db import read_scope
from monitor.scoring.exporters import score_download
from monitor.scoring.feed import scoring_feed
from monitor.scoring.router import file_response
from monitor.sla.words import words
from monitor.web.deps import PageRoute, ScoreReader
from monitor.web.render import render

router = APIRouter(route_class=PageRoute)
Year = Annotated[int, PathParam(ge=2000, le=2100)]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _feed(request: Request, year: int) -> dict[str, Any]:
    app: AppState = state(request)
    with read_scope(app.engine) as session:
        return scoring_feed(session, app.contexts.get(session), year).model_dump(mode="json")


@router.get("/scoring", response_class=HTMLResponse)
def scoring(
    request: Request,
    who: ScoreReader,
    year: Annotated[int | None, Query(ge=2000, le=2100)] = None,
) -> HTMLResponse:
    app: AppState = state(request)
    this_year = app.clock.now().astimezone(app.settings.tz).year
    year = year or this_year
    feed = _feed(request, year)
    return render(
        request,
        "scoring.html",
        {
            "title": f"{year} 年度评分",
            "feed": feed,
            "year": year,
            "years": list(range(this_year, this_year - 6, -1)),
        },
    )


@router.get("/scoring/{year}.xlsx")
def scoring_xlsx(request: Request, who: ScoreReader, year: Year) -> Response:
    """The evaluators' table and its evidence sheet, the same file as the API and the CLI."""
    return _file(request, year, "xlsx")


@router.get("/scoring/{year}.csv")
def scoring_csv(request: Request, who: ScoreReader, year: Year) -> Response:
    """The table alone, with a BOM so Excel on Chinese Windows reads it as UTF-8."""
    return _file(request, year, "csv")


def _file(request: Request, year: int, fmt: str) -> Response:
    app: AppState = state(request)
    with read_scope(app.engine) as session:
        ctx = app.contexts.get(session)
        feed = scoring_feed(session, ctx, year).model_dump(mode="json")
        download = score_download(feed, fmt, words(ctx), ctx.tz)
    response = file_response(download)
    response.headers["Cache-Control"] = "no-store"
    return response
