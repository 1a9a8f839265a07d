"""The year-end scoring feed over HTTP: JSON, or a csv/xlsx download for Excel."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse, Response

from monitor.api.deps import READ_SCORING, QueryTime, ReadContext, ReadSession
from monitor.api.errors import responses
from monitor.auth.service import Principal
from monitor.reports.sheets import XLSX, Download
from monitor.scoring.exporters import score_download
from monitor.scoring.feed import scoring_feed
from monitor.scoring.schemas import ScoreFeed
from monitor.sla.words import words

router = APIRouter(tags=["scoring"])

FILES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {
            "application/json": {},
            "text/csv": {"schema": {"type": "string"}},
            XLSX: {"schema": {"type": "string", "format": "binary"}},
        }
    }
}


def file_response(download: Download) -> Response:
    """A download with its Chinese file name (RFC 6266 filename*)."""
    return Response(
        download.content,
        media_type=download.media_type,
        headers={"Content-Disposition": download.disposition()},
    )


@router.get(
    "/scoring/{year}",
    response_model=ScoreFeed,
    responses={**responses("year"), **FILES},
)
def get_scoring(
    year: Annotated[int, Path(ge=2000, le=2100)],
    session: ReadSession,
    ctx: ReadContext,
    who: Annotated[Principal, Depends(READ_SCORING)],
    as_of: QueryTime = None,
    format: Annotated[
        Literal["json", "csv", "xlsx"],
        Query(description="json (default), or a csv/xlsx download named e.g. 2022年度评分.xlsx"),
    ] = "json",
    encoding: Annotated[
        Literal["utf-8-sig", "utf-8", "gb18030"],
        Query(description="csv only; BOM by default"),
    ] = "utf-8-sig",
) -> ScoreFeed | Response:
    """The score JSON: indicators, scores, and the evidence behind them; or a file."""
    when = None
    if as_of is not None:
        when = as_of if as_of.tzinfo else as_of.replace(tzinfo=ctx.tz)
    feed = scoring_feed(session, ctx, year, when)
    if format == "json":
        return JSONResponse(feed.model_dump(mode="json"))
    data = feed.model_dump(mode="json")
    return file_response(score_download(data, format, words(ctx), ctx.tz, encoding))
