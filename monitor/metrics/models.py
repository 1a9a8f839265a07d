"""The running totals behind the largest metric families."""

from __future__ import annotations

from sqlmodel import Field, SQLModel


class MetricTotal(SQLModel, table=True):
    __tablename__ = "metric_totals"

    family: str = Field(max_length=16, primary_key=True)
    labels: str = Field(max_length=400, primary_key=True, description="JSON list of values")
    count: int = 0
    total: float = 0.0
