"""What the breach and finding routes receive and answer."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from monitor.core.schemas import Input
from monitor.sla.vocab import Decision


class ReviewOut(BaseModel):
    id: int
    decision: str
    reason: str
    reviewer: str
    at: str
    supersedes: int | None


class ClearedBy(BaseModel):
    """The event (usually a correction) that showed the target was met after all."""

    seq: int
    id: str
    type: str
    reason: str | None
    actor: str
    recorded_at: str
    text: str


class BreachOut(BaseModel):
    id: int
    ticket: int
    external_id: str | None
    pool: str
    severity: str
    target: str
    deadline: str
    detected_at: str
    stop: str | None = Field(description="when the clock stopped; null while it still runs")
    overrun_seconds: float = Field(description="how far past the deadline, now if still running")
    review: str = Field(description="pending, confirmed, waived, or cleared (see cleared_by)")
    reviewed_at: str | None
    reviews: list[ReviewOut]
    disputed_by: list[str] = Field(
        default=[],
        description="corrections (#seq) that would clear this breach, waiting for the "
        "supervision unit's decision; until then the breach stands",
    )
    cleared_at: str | None = Field(
        default=None, description="when a later event showed the target met"
    )
    cleared_by: ClearedBy | None = None


class BreachPage(BaseModel):
    items: list[BreachOut]
    total: int


class ReviewIn(Input):
    decision: Decision
    reason: str = Field(default="", max_length=2000)


class CorrectionDecisionIn(Input):
    decision: Literal["accepted", "rejected"]
    reason: str = Field(min_length=1, max_length=2000)


class CorrectionDecisionOut(BaseModel):
    ticket: int
    correction: str
    decision: str
    reason: str
    decided_by: str
    decided_at: str


class FindingOut(BaseModel):
    id: int
    kind: str
    label: str
    ticket: int | None
    pool: str | None
    detail: str
    opened_at: str
    closed_at: str | None


class FindingPage(BaseModel):
    items: list[FindingOut]
    total: int
