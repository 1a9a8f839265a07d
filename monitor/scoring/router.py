"""The year-end scoring feed over HTTP."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from monitor.api.deps import READ_SCORING, ReadContext, ReadSession
from monitor.api.errors import responses
from monitor.auth.service import Principal
from monitor.core.schemas import BoundedTime
from monitor.scoring.feed import scoring_feed
from monitor.scoring.schemas import ScoreFeed

router = APIRouter(tags=["scoring"])


@router.get(
    "/scoring/{year}",
    response_model=ScoreFeed,
    responses=responses("year"),
)
def get_scoring(
    year: Annotated[int, Path(ge=2000, le=2100)],
    session: ReadSession,
    ctx: ReadContext,
    who: Annotated[Principal, Depends(READ_SCORING)],
    as_of: BoundedTime | None = None,
) -> ScoreFeed:
    """The score JSON: indicators, scores, and the evidence behind them."""
    when = None
    if as_of is not None:
        when = as_of if as_of.tzinfo else as_of.replace(tzinfo=ctx.tz)
    return scoring_feed(session, ctx, year, when)
