"""The official PRC working-day calendar as a pure value: which days are worked, and why."""

from __future__ import annotations

import calendar as _cal
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cache

from monitor.core.errors import UnknownCalendarYear

WEEKDAY_NAMES = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")

PACKAGE_HOLIDAY_NAMES = {
    "New Year's Day": "元旦",
    "Spring Festival": "春节",
    "Tomb-sweeping Day": "清明节",
    "Labour Day": "劳动节",
    "Dragon Boat Festival": "端午节",
    "National Day": "国庆节",
    "Mid-autumn Festival": "中秋节",
    "Anti-Fascist 70th Day": "中国人民抗日战争暨世界反法西斯战争胜利70周年纪念日",
}


@dataclass(frozen=True)
class YearArrangement:
    """One year's official arrangement: statutory holidays and make-up working weekend days."""

    year: int
    source: str
    holidays: Mapping[date, str] = field(default_factory=dict)
    workdays: Mapping[date, str] = field(default_factory=dict)

    def problems(self) -> list[str]:
        """What makes the arrangement impossible; empty when it is sound."""
        out = []
        for day in sorted({*self.holidays, *self.workdays}):
            if day.year != self.year:
                out.append(f"{day.isoformat()} is not in {self.year}")
        for day in sorted(self.workdays):
            if day.weekday() < 5:
                out.append(
                    f"make-up working day {day.isoformat()} is a {WEEKDAY_NAMES[day.weekday()]},"
                    " not a weekend day"
                )
            if day in self.holidays:
                out.append(f"{day.isoformat()} is both a holiday and a make-up working day")
        return out


@dataclass(frozen=True)
class DayInfo:
    day: date
    workday: bool
    kind: str  # weekday | weekend | holiday | makeup
    name: str | None
    source: str

    def describe(self) -> str:
        label = {
            "weekday": "工作日",
            "weekend": "周末",
            "holiday": "法定节假日",
            "makeup": "调休上班",
        }[self.kind]
        name = f"（{self.name}）" if self.name else ""
        return f"{self.day.isoformat()}({WEEKDAY_NAMES[self.day.weekday()]}) {label}{name}"


@dataclass(frozen=True)
class Count:
    """The result of counting N working days after a date, with every day looked at."""

    deadline_day: date
    counted: tuple[DayInfo, ...]
    skipped: tuple[DayInfo, ...]


class WorkCalendar:
    """Working days of the years it knows; any other year raises, it is never guessed."""

    def __init__(self, arrangements: Iterable[YearArrangement]) -> None:
        self._years: dict[int, YearArrangement] = {a.year: a for a in arrangements}

    @property
    def known_years(self) -> list[int]:
        return sorted(self._years)

    def knows(self, year: int) -> bool:
        return year in self._years

    def arrangement(self, year: int) -> YearArrangement:
        try:
            return self._years[year]
        except KeyError:
            raise UnknownCalendarYear(year) from None

    def day(self, day: date) -> DayInfo:
        arrangement = self.arrangement(day.year)
        if day in arrangement.workdays:
            return DayInfo(day, True, "makeup", arrangement.workdays[day], arrangement.source)
        if day in arrangement.holidays:
            return DayInfo(day, False, "holiday", arrangement.holidays[day], arrangement.source)
        if day.weekday() >= 5:
            return DayInfo(day, False, "weekend", None, arrangement.source)
        return DayInfo(day, True, "weekday", None, arrangement.source)

    def is_workday(self, day: date) -> bool:
        return self.day(day).workday

    def count_workdays_after(self, start: date, n: int) -> Count:
        """The N-th working day strictly after `start`, with the days counted and skipped."""
        if n < 1:
            raise ValueError("n must be at least 1")
        counted: list[DayInfo] = []
        skipped: list[DayInfo] = []
        current = start
        while len(counted) < n:
            current += timedelta(days=1)
            info = self.day(current)
            (counted if info.workday else skipped).append(info)
        return Count(current, tuple(counted), tuple(skipped))

    def special_days(self, year: int) -> list[DayInfo]:
        """Every day of the year that is not an ordinary weekday or weekend."""
        arrangement = self.arrangement(year)
        return [self.day(d) for d in sorted({*arrangement.holidays, *arrangement.workdays})]

    def workday_count(self, year: int) -> int:
        self.arrangement(year)
        first = date(year, 1, 1)
        days = 366 if _cal.isleap(year) else 365
        return sum(self.is_workday(first + timedelta(days=i)) for i in range(days))


@cache
def package_arrangements() -> tuple[YearArrangement, ...]:
    """The years the chinesecalendar package knows, as arrangements."""
    import chinese_calendar
    from chinese_calendar import constants

    source = f"chinesecalendar {getattr(chinese_calendar, '__version__', '')}".strip()
    years = sorted({d.year for d in constants.holidays} | {d.year for d in constants.workdays})
    out = []
    for year in years:
        holidays = {
            d: PACKAGE_HOLIDAY_NAMES.get(str(n), str(n))
            for d, n in constants.holidays.items()
            if d.year == year
        }
        workdays = {
            d: f"{PACKAGE_HOLIDAY_NAMES.get(str(n), str(n))}调休"
            for d, n in constants.workdays.items()
            if d.year == year
        }
        out.append(YearArrangement(year, source, holidays, workdays))
    return tuple(out)


def build_calendar(*layers: Iterable[YearArrangement]) -> WorkCalendar:
    """Later layers replace whole years of earlier ones (an official notice is complete)."""
    years: dict[int, YearArrangement] = {}
    for layer in layers:
        for arrangement in layer:
            years[arrangement.year] = arrangement
    return WorkCalendar(years.values())
