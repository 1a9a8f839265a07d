"""The year-end scoring feed over HTTP."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request

from monitor.api.deps import READ_SCORING, state
from monitor.auth.service import Principal
from monitor.core.db import read_scope
from monitor.scoring.feed import scoring_feed

router = APIRouter(tags=["scoring"])


@router.get(
    "/scoring/{year}",
    responses={401: {"description": "no or bad token"}, 403: {"description": "role not allowed"}},
)
def get_scoring(
    year: Annotated[int, Path(ge=2000, le=2100)],
    request: Request,
    who: Annotated[Principal, Depends(READ_SCORING)],
    as_of: datetime | None = None,
) -> dict[str, Any]:
    """The score JSON: indicators, scores, and the evidence behind them."""
    app = state(request)
    with read_scope(app.engine) as session:
        ctx = app.contexts.get(session)
        when = None
        if as_of is not None:
            when = as_of if as_of.tzinfo else as_of.replace(tzinfo=ctx.tz)
        return scoring_feed(session, ctx, year, when)
