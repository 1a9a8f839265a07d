"""Scoring rules (pure): breaches and a rule in, points and the evaluators' comment out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from monitor.core.config_files import load_config
from monitor.sla.vocab import Review


class BreachCountRule(BaseModel):
    """Points off per late fault: the evaluators' 系统故障响应或维护及时性."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["breach_count"]
    severities: list[str] = Field(default=["major"], min_length=1)
    per_occurrence: float = Field(default=1, gt=0)
    count: Literal["per_ticket", "per_breach"] = "per_ticket"


Rule = Annotated[BreachCountRule, Field(discriminator="kind")]


class Indicator(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: str
    level1: str = Field(description="一级指标")
    level2: str = Field(description="二级指标")
    points: float = Field(gt=0)
    criteria: str = Field(description="评分标准")
    rule: Rule


class IndicatorFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    indicators: list[Indicator] = Field(min_length=1)


def load_indicators(config_dir: Path) -> IndicatorFile:
    return load_config(IndicatorFile, config_dir / "indicators.yaml")


@dataclass(frozen=True)
class CountedBreach:
    target: str
    review: str  # pending | confirmed | waived


@dataclass(frozen=True)
class ScopeTicket:
    """A ticket of the evaluation year as judged at the as-of instant."""

    ticket_id: int
    severity: str
    reported_at: datetime
    breaches: Sequence[CountedBreach] = field(default_factory=tuple)
    # Targets whose outcome can still change (running, at risk, paused, not started, or
    # waiting for an unknown calendar year): (target, status).
    unsettled: Sequence[tuple[str, str]] = field(default_factory=tuple)


@dataclass(frozen=True)
class Score:
    score: float
    final: bool
    tickets_in_scope: int
    occurrences: int
    breaches: dict[str, int]
    comment: str
    in_scope: list[int]
    occurrence_tickets: list[int]
    # Why the score is not final: "pending_review" or a target status → the tickets.
    not_final: dict[str, list[int]] = field(default_factory=dict)


def points_after(rule: BreachCountRule, points: float, occurrences: int) -> float:
    """The indicator's score: points less per_occurrence for each occurrence, never below 0."""
    return float(max(0.0, points - rule.per_occurrence * occurrences))


def occurrences_of(rule: BreachCountRule, standing_breaches: Sequence[int]) -> int:
    """Occurrences from each late ticket's number of standing (not waived) breaches."""
    late = [n for n in standing_breaches if n]
    return len(late) if rule.count == "per_ticket" else sum(late)


def comment(in_scope: int, late: int, noun: str) -> str:
    """The evaluators' sentence, e.g. 本年度共发生6次重大故障，其中1次故障处理超时。"""
    if in_scope == 0:
        return f"本年度未发生{noun}。"
    if late == 0:
        return f"本年度共发生{in_scope}次{noun}，均在约定时间内处理完成。"
    return f"本年度共发生{in_scope}次{noun}，其中{late}次故障处理超时。"


def score_breach_count(
    rule: BreachCountRule, points: float, tickets: Sequence[ScopeTicket], noun: str
) -> Score:
    """Count the year's tickets of the rule's severities, then score and comment."""
    in_scope = [t for t in tickets if t.severity in rule.severities]
    counts = {review.value: 0 for review in Review}
    for t in in_scope:
        for b in t.breaches:
            counts[b.review] += 1
    standing = {t.ticket_id: sum(b.review != Review.WAIVED for b in t.breaches) for t in in_scope}
    occurrences = occurrences_of(rule, list(standing.values()))
    late = [ticket_id for ticket_id, n in standing.items() if n]
    not_final: dict[str, list[int]] = {}
    for t in in_scope:
        reasons = [s for _, s in t.unsettled]
        if any(b.review == Review.PENDING for b in t.breaches):
            reasons.insert(0, "pending_review")
        for reason in dict.fromkeys(reasons):
            not_final.setdefault(reason, []).append(t.ticket_id)
    return Score(
        score=points_after(rule, points, occurrences),
        final=not not_final,
        not_final=not_final,
        tickets_in_scope=len(in_scope),
        occurrences=occurrences,
        breaches=counts,
        comment=comment(len(in_scope), len(late), noun),
        in_scope=[t.ticket_id for t in in_scope],
        occurrence_tickets=late,
    )
