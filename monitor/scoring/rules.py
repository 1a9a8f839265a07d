"""Scoring rules (pure): breaches and a rule in, points and the evaluators' comment out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from monitor.core.config_files import load_config


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


def score_breach_count(
    rule: BreachCountRule, points: float, tickets: Sequence[ScopeTicket], noun: str
) -> Score:
    in_scope = [t for t in tickets if t.severity in rule.severities]
    counts = {"pending": 0, "confirmed": 0, "waived": 0}
    occurrences = 0
    occurrence_tickets = []
    for t in in_scope:
        for b in t.breaches:
            counts[b.review] += 1
        standing = [b for b in t.breaches if b.review != "waived"]
        if standing:
            occurrence_tickets.append(t.ticket_id)
            occurrences += 1 if rule.count == "per_ticket" else len(standing)
    score = max(0.0, points - rule.per_occurrence * occurrences)
    n, late = len(in_scope), len(occurrence_tickets)
    if n == 0:
        comment = f"本年度未发生{noun}。"
    elif late == 0:
        comment = f"本年度共发生{n}次{noun}，均在约定时间内处理完成。"
    else:
        comment = f"本年度共发生{n}次{noun}，其中{late}次故障处理超时。"
    return Score(
        score=float(score),
        final=counts["pending"] == 0,
        tickets_in_scope=n,
        occurrences=occurrences,
        breaches=counts,
        comment=comment,
        in_scope=[t.ticket_id for t in in_scope],
        occurrence_tickets=occurrence_tickets,
    )
