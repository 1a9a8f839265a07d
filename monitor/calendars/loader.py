"""Reading an official arrangement file (config/calendar.yaml or `calendar load FILE`)."""

from __future__ import annotations

import datetime as dt
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from monitor.calendars.calendar import YearArrangement
from monitor.core.config_files import read_yaml, validate
from monitor.core.errors import InvalidInput, Problem


class HolidaySpan(BaseModel):
    """A holiday on one `date`, or over `from`…`to` inclusive."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    name: str = Field(min_length=1)
    date: dt.date | None = None
    from_: dt.date | None = Field(default=None, alias="from")
    to: dt.date | None = None

    @model_validator(mode="after")
    def _one_form(self) -> HolidaySpan:
        if self.date is not None and (self.from_ or self.to):
            raise ValueError("give either date, or from and to, not both")
        if self.date is None and (self.from_ is None or self.to is None):
            raise ValueError("give date, or both from and to")
        if self.from_ and self.to and self.to < self.from_:
            raise ValueError("to is before from")
        return self

    def days(self) -> list[dt.date]:
        if self.date is not None:
            return [self.date]
        assert self.from_ is not None and self.to is not None
        return [self.from_ + timedelta(days=i) for i in range((self.to - self.from_).days + 1)]


class MakeupDay(BaseModel):
    """A weekend day declared a working day (调休上班)."""

    model_config = ConfigDict(extra="forbid")
    date: date
    name: str = "调休上班"


class YearFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str = Field(default="", description="the notice this arrangement comes from")
    holidays: list[HolidaySpan] = []
    workdays: list[MakeupDay] = []


class CalendarFile(BaseModel):
    """A file of official arrangements, one entry per year."""

    model_config = ConfigDict(extra="forbid")
    years: dict[int, YearFile] = {}


def arrangements_from(data: Any, default_source: str) -> list[YearArrangement]:
    """Arrangements from parsed YAML, or InvalidInput naming each bad field."""
    parsed = validate(CalendarFile, data if data is not None else {})
    out: list[YearArrangement] = []
    problems: list[Problem] = []
    for year, body in sorted(parsed.years.items()):
        holidays = {day: span.name for span in body.holidays for day in span.days()}
        workdays = {m.date: m.name for m in body.workdays}
        arrangement = YearArrangement(year, body.source or default_source, holidays, workdays)
        problems += [Problem(f"years.{year}", p) for p in arrangement.problems()]
        out.append(arrangement)
    if problems:
        raise InvalidInput(problems)
    return out


def read_calendar_file(path: Path) -> list[YearArrangement]:
    return arrangements_from(read_yaml(path), default_source=path.name)


def arrangement_to_dict(arrangement: YearArrangement) -> dict[str, Any]:
    """The stored form of an arrangement (dates as ISO strings)."""
    return {
        "year": arrangement.year,
        "source": arrangement.source,
        "holidays": {d.isoformat(): n for d, n in sorted(arrangement.holidays.items())},
        "workdays": {d.isoformat(): n for d, n in sorted(arrangement.workdays.items())},
    }


def arrangement_from_dict(data: dict[str, Any]) -> YearArrangement:
    return YearArrangement(
        int(data["year"]),
        str(data["source"]),
        {date.fromisoformat(d): n for d, n in data["holidays"].items()},
        {date.fromisoformat(d): n for d, n in data["workdays"].items()},
    )
