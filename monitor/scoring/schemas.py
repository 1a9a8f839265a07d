"""The score JSON of the specification (§6), as types."""

from __future__ import annotations

from pydantic import BaseModel, Field

from monitor.tickets.schemas import EventOut


class ReviewRecord(BaseModel):
    decision: str
    reason: str
    reviewer: str
    at: str | None


class CountedBreachOut(BaseModel):
    target: str
    name: str
    deadline: str | None
    stop: str | None
    overrun_seconds: float | None
    review: str
    counted: bool
    reviews: list[ReviewRecord]
    explain: str


class TargetSnapshot(BaseModel):
    id: str
    name: str
    status: str
    start: str | None
    deadline: str | None
    stop: str | None


class TicketEvidence(BaseModel):
    ticket: int
    external_id: str | None
    pool: str
    severity: str
    title: str
    reported_at: str | None
    status: str
    occurrence: bool
    targets: list[TargetSnapshot]
    breaches: list[CountedBreachOut]
    events: list[EventOut]


class NotFinal(BaseModel):
    """One reason the score can still change, with the tickets it concerns."""

    reason: str = Field(
        description="pending_review, or the status of a target that can still change: "
        "running, at_risk, paused, not_started, unknown_calendar"
    )
    text: str
    tickets: list[str] = Field(description="external ids (or ids) of the tickets concerned")


class IndicatorScore(BaseModel):
    id: str
    name: str
    level1: str
    level2: str
    criteria: str
    points: float
    score: float
    final: bool
    tickets_in_scope: int
    occurrences: int
    breaches: dict[str, int]
    comment: str
    not_final: list[NotFinal] = Field(
        default=[], description="why `final` is false; empty when it is true"
    )
    evidence: list[TicketEvidence]


class ScoreFeed(BaseModel):
    year: int
    as_of: str | None
    indicators: list[IndicatorScore]
