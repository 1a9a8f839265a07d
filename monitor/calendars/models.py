"""Official arrangements loaded by admins; the latest load of a year wins."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from monitor.core.models_base import instant


class CalendarLoad(SQLModel, table=True):
    __tablename__ = "calendar_loads"

    id: int | None = Field(default=None, primary_key=True)
    year: int = Field(index=True)
    source: str = Field(max_length=500)
    body: dict[str, Any] = Field(sa_type=sa.JSON)
    loaded_at: datetime = instant()
    loaded_by: str = Field(max_length=128)
