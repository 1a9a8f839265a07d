"""The working-day calendar against the official arrangements."""

from __future__ import annotations

from datetime import date, timedelta

import chinese_calendar
import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.calendars.calendar import YearArrangement, build_calendar, package_arrangements
from monitor.calendars.loader import arrangements_from
from monitor.core.errors import InvalidInput, UnknownCalendarYear
from tests.helpers import official

CAL = official()
KNOWN = st.dates(min_value=date(2005, 1, 1), max_value=date(2026, 11, 30))


def nth_by_oracle(start: date, n: int) -> date:
    """Count working days one by one with the package's own predicate."""
    day, counted = start, 0
    while counted < n:
        day += timedelta(days=1)
        if chinese_calendar.is_workday(day):
            counted += 1
    return day


@given(KNOWN, st.integers(min_value=1, max_value=15))
def test_deadline_equals_counting_official_working_days_one_by_one(start: date, n: int) -> None:
    assert CAL.count_workdays_after(start, n).deadline_day == nth_by_oracle(start, n)


@given(KNOWN, KNOWN, st.integers(min_value=1, max_value=10))
def test_a_later_start_never_gives_an_earlier_deadline(a: date, b: date, n: int) -> None:
    early, late = sorted((a, b))
    assert (
        CAL.count_workdays_after(early, n).deadline_day
        <= CAL.count_workdays_after(late, n).deadline_day
    )


def test_every_make_up_weekend_day_counts_and_no_holiday_weekday_does() -> None:
    for arrangement in package_arrangements():
        for day in arrangement.workdays:
            assert day.weekday() >= 5
            assert CAL.count_workdays_after(day - timedelta(days=1), 1).deadline_day == day
        for day in arrangement.holidays:
            assert not CAL.is_workday(day)
            assert CAL.count_workdays_after(day - timedelta(days=1), 1).deadline_day != day


@pytest.mark.parametrize(
    ("start", "n", "deadline", "why"),
    [
        # 2023 Spring Festival: off 1-21..1-27, Sat 1-28 and Sun 1-29 worked.
        (date(2023, 1, 20), 3, date(2023, 1, 30), "make-up weekend 1-28, 1-29 count"),
        # 2024 Spring Festival: off 2-10..2-17, Sun 2-4 and Sun 2-18 worked.
        (date(2024, 2, 8), 3, date(2024, 2, 19), "2-9 worked, holiday skipped, Sun 2-18 counts"),
        (date(2024, 2, 3), 1, date(2024, 2, 4), "Sunday 2-4 is a make-up working day"),
        # 2023 National Day with Mid-Autumn: off 9-29..10-6, Sat 10-7 and Sun 10-8 worked.
        (date(2023, 9, 28), 3, date(2023, 10, 9), "10-7, 10-8 make-up, then Monday"),
        # 2024 National Day: off 10-1..10-7, Sun 9-29 and Sat 10-12 worked.
        (date(2024, 9, 27), 3, date(2024, 10, 8), "Sun 9-29 counts, 10-1..10-7 do not"),
        # 2022 National Day: off 10-1..10-7, Sat 10-8 and Sun 10-9 worked.
        (date(2022, 9, 30), 2, date(2022, 10, 9), "Sat 10-8 and Sun 10-9 are make-up days"),
        # The seed incident's report: resolved Wed 2022-08-17, three working days.
        (date(2022, 8, 17), 3, date(2022, 8, 22), "weekend 8-20, 8-21 skipped"),
    ],
)
def test_named_holidays_follow_the_official_arrangements(
    start: date, n: int, deadline: date, why: str
) -> None:
    assert CAL.count_workdays_after(start, n).deadline_day == deadline, why


def test_a_year_nobody_loaded_is_never_guessed() -> None:
    with pytest.raises(UnknownCalendarYear) as exc:
        CAL.is_workday(date(2027, 1, 4))
    assert exc.value.year == 2027
    # A count that runs into an unknown year fails instead of assuming Monday–Friday.
    with pytest.raises(UnknownCalendarYear):
        CAL.count_workdays_after(date(2026, 12, 30), 3)


@given(
    st.dates(min_value=date(2027, 1, 1), max_value=date(2100, 12, 31)),
    st.integers(min_value=1, max_value=5),
)
def test_unknown_years_always_raise(day: date, n: int) -> None:
    with pytest.raises(UnknownCalendarYear):
        CAL.count_workdays_after(day - timedelta(days=1), n)


def test_a_loaded_year_becomes_known_and_replaces_the_whole_year() -> None:
    loaded = arrangements_from(
        {
            "years": {
                2027: {
                    "source": "通知",
                    "holidays": [
                        {"name": "元旦", "date": "2027-01-01"},
                        {"name": "春节", "from": "2027-02-06", "to": "2027-02-13"},
                    ],
                    "workdays": [{"name": "春节调休", "date": "2027-02-14"}],
                },
                2024: {"source": "test", "holidays": [], "workdays": []},
            }
        },
        "file",
    )
    cal = build_calendar(package_arrangements(), loaded)
    assert cal.knows(2027)
    assert not cal.is_workday(date(2027, 1, 1))
    assert cal.is_workday(date(2027, 2, 14))  # a Sunday worked
    assert cal.count_workdays_after(date(2027, 2, 5), 1).deadline_day == date(2027, 2, 14)
    # 2024 replaced by an arrangement with no holidays at all.
    assert cal.is_workday(date(2024, 10, 1))
    assert cal.day(date(2027, 2, 14)).source == "通知"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"workdays": [{"date": "2027-02-15"}]}, "2027-02-15 is a 周一, not a weekend day"),
        (
            {
                "holidays": [{"name": "x", "date": "2027-02-14"}],
                "workdays": [{"date": "2027-02-14"}],
            },
            "both a holiday and a make-up working day",
        ),
        ({"holidays": [{"name": "x", "date": "2026-12-31"}]}, "2026-12-31 is not in 2027"),
        ({"holidays": [{"name": "x", "from": "2027-02-10", "to": "2027-02-01"}]}, "to is before"),
        ({"holidays": [{"name": "x", "date": "2027-02-30"}]}, "date"),
    ],
)
def test_impossible_arrangements_are_refused_naming_the_year(
    body: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidInput) as exc:
        arrangements_from({"years": {2027: body}}, "file")
    text = str(exc.value)
    assert message in text
    assert "2027" in text


def test_show_lists_each_special_day_with_its_source() -> None:
    days = {d.day: d for d in CAL.special_days(2024)}
    assert days[date(2024, 2, 4)].kind == "makeup" and days[date(2024, 2, 4)].workday
    assert days[date(2024, 10, 1)].kind == "holiday" and days[date(2024, 10, 1)].name == "国庆节"
    assert days[date(2024, 10, 1)].source.startswith("chinesecalendar")
    assert CAL.workday_count(2024) == 251


def test_arrangement_problems_are_empty_for_every_package_year() -> None:
    assert all(
        not YearArrangement(a.year, a.source, a.holidays, a.workdays).problems()
        for a in package_arrangements()
    )
