"""The monthly supervision report over HTTP, as a download."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response

from monitor.api.deps import READ_REPORTS, ReadContext, ReadSession
from monitor.api.errors import responses
from monitor.auth.service import Principal
from monitor.core.errors import InvalidInput, Problem
from monitor.reports.monthly import monthly_download, monthly_report, parse_month
from monitor.scoring.router import FILES, file_response

router = APIRouter(tags=["reports"])


@router.get(
    "/reports/monthly/{month}",
    response_class=Response,
    responses={**responses("report"), **FILES},
)
def get_monthly(
    month: Annotated[str, Path(max_length=7, description="YYYY-MM")],
    session: ReadSession,
    ctx: ReadContext,
    who: Annotated[Principal, Depends(READ_REPORTS)],
    format: Annotated[
        Literal["xlsx", "csv", "md"],
        Query(description="xlsx (default), csv (the breaches) or md"),
    ] = "xlsx",
) -> Response:
    """The 监理月报 of a month, every figure recomputed from the raw events."""
    try:
        year, mon = parse_month(month)
    except ValueError as exc:
        raise InvalidInput([Problem("path.month", str(exc))]) from None
    report = monthly_report(session, ctx, year, mon)
    return file_response(monthly_download(report, format, ctx.tz))
