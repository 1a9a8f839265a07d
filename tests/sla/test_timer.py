"""The SLA clock's exact semantics, without a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.calendars.calendar import build_calendar
from monitor.sla.policy import Policy, load_policy_file
from monitor.sla.timer import TargetResult, TimelineEvent, judge
from tests.conftest import CONFIG
from tests.helpers import SH, local, official, policy

CAL = official()
CONTRACT: Policy = load_policy_file(CONFIG).policies[0]
LATER = datetime(2026, 11, 1, tzinfo=UTC)


def events(*items: tuple[str, datetime] | TimelineEvent) -> list[TimelineEvent]:
    out = []
    for i, item in enumerate(items, start=1):
        out.append(item if isinstance(item, TimelineEvent) else TimelineEvent(i, item[0], item[1]))
    return out


def targets(
    evs: list[TimelineEvent], severity: str = "major", pol: Policy = CONTRACT, now: datetime = LATER
) -> dict[str, TargetResult]:
    return {t.target: t for t in judge(evs, severity, pol, CAL, now, SH).targets}


def test_the_seed_incident_breaches_resolution_and_report_but_not_arrival() -> None:
    res = targets(
        events(
            ("reported", local(2022, 8, 10, 11, 41)),
            ("arrived", local(2022, 8, 10, 12, 5)),
            ("resolved", local(2022, 8, 17, 18, 0)),
            ("report_submitted", local(2022, 8, 29, 10, 0)),
        )
    )
    assert res["arrival"].status == "met"
    assert res["arrival"].deadline == local(2022, 8, 10, 12, 11)
    assert res["resolution"].status == "breached"
    assert res["resolution"].deadline == local(2022, 8, 10, 13, 41)
    assert res["resolution"].overrun == local(2022, 8, 17, 18) - local(2022, 8, 10, 13, 41)
    assert res["report"].status == "breached"
    assert res["report"].deadline == datetime(2022, 8, 22, 23, 59, 59, 999999, tzinfo=SH)
    assert "2022-08-20(周六) 周末" in res["report"].explain


def test_stop_exactly_at_the_deadline_is_met_and_a_microsecond_later_breached() -> None:
    start = local(2024, 3, 1, 9, 0)
    on_time = targets(events(("reported", start), ("arrived", start + timedelta(minutes=30))))
    late = targets(
        events(("reported", start), ("arrived", start + timedelta(minutes=30, microseconds=1)))
    )
    assert on_time["arrival"].status == "met"
    assert late["arrival"].status == "breached"


def test_an_open_clock_breaches_only_after_its_deadline_and_warns_before() -> None:
    start = local(2024, 3, 1, 9, 0)
    evs = events(("reported", start))
    assert targets(evs, now=start + timedelta(minutes=23))["arrival"].status == "running"
    assert targets(evs, now=start + timedelta(minutes=24))["arrival"].status == "at_risk"
    assert targets(evs, now=start + timedelta(minutes=30))["arrival"].status == "at_risk"
    gone = targets(evs, now=start + timedelta(minutes=30, seconds=1))["arrival"]
    assert gone.status == "breached"
    assert gone.overrun == timedelta(seconds=1)
    assert targets(evs, now=start)["arrival"].risk_at == start + timedelta(minutes=24)


def test_a_target_whose_start_has_not_happened_is_not_started() -> None:
    res = targets(events(("reported", local(2024, 3, 1, 9, 0))), now=local(2024, 3, 1, 9, 1))
    assert res["report"].status == "not_started"
    assert res["report"].deadline is None


def test_working_day_deadline_is_the_end_of_the_nth_working_day_after_the_local_date() -> None:
    # Resolved 00:30 on Friday 2024-02-09 local (still Thursday in UTC): counting starts Saturday.
    res = targets(
        events(("reported", local(2024, 2, 9, 0, 0)), ("resolved", local(2024, 2, 9, 0, 30))),
        now=local(2024, 2, 9, 1),
    )
    assert res["report"].deadline == datetime(2024, 2, 20, 23, 59, 59, 999999, tzinfo=SH)
    assert res["report"].status == "running"


def test_unknown_calendar_year_is_never_guessed() -> None:
    res = targets(
        events(
            ("reported", local(2026, 12, 30, 9)),
            ("resolved", local(2026, 12, 30, 10)),
            ("report_submitted", local(2026, 12, 31, 10)),
        ),
        now=local(2026, 12, 31, 11),
    )
    assert res["report"].status == "unknown_calendar"
    assert res["report"].deadline is None
    assert res["report"].unknown_year == 2027
    assert "2027" in res["report"].explain


PAUSABLE = policy(
    [
        {
            "id": "fix",
            "name": "修复",
            "start": "reported",
            "stop": "resolved",
            "duration": "2h",
            "pausable": True,
        },
        {
            "id": "fix_strict",
            "name": "修复",
            "start": "reported",
            "stop": "resolved",
            "duration": "2h",
            "pausable": False,
        },
    ]
)


def test_pauses_extend_only_pausable_targets() -> None:
    start = local(2024, 3, 1, 9)
    res = targets(
        events(
            ("reported", start),
            ("paused", start + timedelta(minutes=30)),
            ("resumed", start + timedelta(minutes=90)),
            ("resolved", start + timedelta(minutes=150)),
        ),
        pol=PAUSABLE,
    )
    assert res["fix"].deadline == start + timedelta(hours=3)
    assert res["fix"].status == "met"
    assert res["fix"].paused == timedelta(hours=1)
    assert res["fix_strict"].deadline == start + timedelta(hours=2)
    assert res["fix_strict"].status == "breached"
    assert "不可暂停" in res["fix_strict"].explain


def test_an_open_pause_freezes_a_pausable_clock() -> None:
    start = local(2024, 3, 1, 9)
    res = targets(
        events(("reported", start), ("paused", start + timedelta(minutes=30))),
        pol=PAUSABLE,
        now=start + timedelta(hours=5),
    )
    assert res["fix"].status == "paused"
    assert res["fix_strict"].status == "breached"


def test_a_pause_after_the_deadline_does_not_rescue_it() -> None:
    start = local(2024, 3, 1, 9)
    res = targets(
        events(("reported", start), ("paused", start + timedelta(hours=3))),
        pol=PAUSABLE,
        now=start + timedelta(hours=4),
    )
    assert res["fix"].status == "breached"


def test_severity_change_rejudges_from_the_original_start() -> None:
    start = local(2024, 3, 1, 9)
    evs = events(
        ("reported", start),
        TimelineEvent(2, "severity_changed", start + timedelta(hours=3), severity="major"),
        ("resolved", start + timedelta(hours=3, minutes=10)),
    )
    judged = judge(evs, "general", CONTRACT, CAL, LATER, SH)
    assert judged.severity == "major"
    res = {t.target: t for t in judged.targets}
    assert set(res) == {"arrival", "resolution", "report"}
    assert res["resolution"].deadline == start + timedelta(hours=2)
    assert res["resolution"].status == "breached"
    assert "general" in res["resolution"].explain


def test_reopen_clears_resolution_and_the_last_resolved_counts() -> None:
    start = local(2024, 3, 1, 9)
    first = events(
        ("reported", start),
        ("arrived", start + timedelta(minutes=10)),
        ("resolved", start + timedelta(minutes=60)),
        ("reopened", start + timedelta(minutes=70)),
    )
    res = targets(first, now=start + timedelta(minutes=80))
    assert res["resolution"].status == "running"
    assert res["resolution"].stop is None
    assert res["report"].status == "not_started"
    later = [*first, TimelineEvent(5, "resolved", start + timedelta(minutes=150))]
    res = targets(later, now=start + timedelta(hours=3))
    assert res["resolution"].stop == start + timedelta(minutes=150)
    assert res["resolution"].status == "breached"
    assert judge(first, "major", CONTRACT, CAL, LATER, SH).status == "open"


def test_the_latest_correction_wins_and_the_history_stays_visible() -> None:
    start = local(2024, 3, 1, 9)
    evs = events(
        ("reported", start),
        ("arrived", start + timedelta(minutes=50)),
        TimelineEvent(
            3, "correction", start + timedelta(minutes=20), corrects=2, reason="按监控记录更正"
        ),
        TimelineEvent(
            4, "correction", start + timedelta(minutes=25), corrects=2, reason="按现场签到单更正"
        ),
    )
    res = targets(evs, now=start + timedelta(hours=1))
    assert res["arrival"].stop == start + timedelta(minutes=25)
    assert res["arrival"].status == "met"
    assert "按现场签到单更正" in res["arrival"].explain
    assert "共 2 次更正" in res["arrival"].explain


def test_correcting_the_reported_time_moves_every_clock() -> None:
    start = local(2024, 3, 1, 9)
    evs = events(
        ("reported", start),
        ("arrived", start + timedelta(minutes=40)),
        TimelineEvent(
            3, "correction", start + timedelta(minutes=15), corrects=1, reason="报障时间误填"
        ),
    )
    res = targets(evs, now=start + timedelta(hours=1))
    assert res["arrival"].start == start + timedelta(minutes=15)
    assert res["arrival"].status == "met"


# Property tests ---------------------------------------------------------------------------


def naive(*args: int) -> datetime:
    """Hypothesis takes naive bounds and attaches the zone itself."""
    return datetime(*args, tzinfo=UTC).replace(tzinfo=None)  # type: ignore[misc]


instants = st.datetimes(
    min_value=naive(2019, 1, 1), max_value=naive(2026, 10, 1), timezones=st.just(UTC)
)
minutes = st.integers(min_value=0, max_value=60 * 24 * 10)


@given(instants, minutes)
def test_recomputing_gives_the_same_result(start: datetime, stop_after: int) -> None:
    evs = events(("reported", start), ("resolved", start + timedelta(minutes=stop_after)))
    assert judge(evs, "major", CONTRACT, CAL, LATER, SH) == judge(
        evs, "major", CONTRACT, CAL, LATER, SH
    )


@given(instants, minutes, minutes, minutes)
def test_pauses_change_nothing_on_a_non_pausable_target(
    start: datetime, p1: int, p2: int, stop_after: int
) -> None:
    base = [("reported", start), ("resolved", start + timedelta(minutes=stop_after))]
    paused = [
        *base,
        ("paused", start + timedelta(minutes=p1)),
        ("resumed", start + timedelta(minutes=p1 + p2)),
    ]
    without = targets(events(*base), pol=PAUSABLE)["fix_strict"]
    with_pauses = targets(events(*paused), pol=PAUSABLE)["fix_strict"]
    assert (without.status, without.deadline, without.stop) == (
        with_pauses.status,
        with_pauses.deadline,
        with_pauses.stop,
    )


@given(instants, st.integers(min_value=0, max_value=60 * 24 * 20))
def test_stop_at_or_before_the_deadline_is_met_after_it_breached(
    start: datetime, stop_after: int
) -> None:
    res = targets(
        events(
            ("reported", start),
            ("resolved", start + timedelta(minutes=1)),
            ("report_submitted", start + timedelta(minutes=1 + stop_after)),
        )
    )
    report = res["report"]
    assert report.deadline is not None and report.stop is not None
    assert report.status == ("met" if report.stop <= report.deadline else "breached")


@given(instants, instants)
def test_a_later_start_never_moves_the_deadline_earlier(a: datetime, b: datetime) -> None:
    early, late = sorted((a, b))
    for target in ("resolution", "report"):
        first = targets(events(("reported", early), ("resolved", early)))[target]
        second = targets(events(("reported", late), ("resolved", late)))[target]
        assert first.deadline is not None and second.deadline is not None
        assert first.deadline <= second.deadline


@given(
    st.datetimes(min_value=naive(2026, 12, 1), max_value=naive(2030, 1, 1), timezones=st.just(UTC))
)
def test_a_working_day_deadline_in_an_unknown_year_is_unknown(start: datetime) -> None:
    res = targets(events(("reported", start), ("resolved", start)), now=start + timedelta(days=1))
    deadline_known = res["report"].status != "unknown_calendar"
    if deadline_known:
        assert res["report"].deadline is not None
        assert res["report"].deadline.astimezone(SH).year <= 2026
    else:
        assert res["report"].deadline is None


def test_policy_changes_never_leak_between_versions() -> None:
    stricter = policy(
        [
            {
                "id": "arrival",
                "name": "到场",
                "start": "reported",
                "stop": "arrived",
                "duration": "15m",
            }
        ]
    )
    start = local(2024, 3, 1, 9)
    evs = events(("reported", start), ("arrived", start + timedelta(minutes=20)))
    assert targets(evs)["arrival"].status == "met"
    assert targets(evs, pol=stricter)["arrival"].status == "breached"


def test_calendar_layers_are_used_by_the_clock() -> None:
    from monitor.calendars.loader import arrangements_from

    cal = build_calendar(
        CAL._years.values(),
        arrangements_from(
            {"years": {2027: {"holidays": [{"name": "元旦", "date": "2027-01-01"}]}}}, "f"
        ),
    )
    evs = events(("reported", local(2026, 12, 30, 9)), ("resolved", local(2026, 12, 30, 10)))
    res = {
        t.target: t for t in judge(evs, "major", CONTRACT, cal, local(2026, 12, 30, 11), SH).targets
    }
    # 12-31 (Thu), 1-1 holiday, 1-2/1-3 weekend, 1-4 (Mon), 1-5 (Tue).
    assert res["report"].deadline == datetime(2027, 1, 5, 23, 59, 59, 999999, tzinfo=SH)


@pytest.mark.parametrize("severity", ["major", "significant", "general", "anomaly"])
def test_every_default_severity_has_the_contract_targets(severity: str) -> None:
    expected = {
        "major": {"arrival": "30m", "resolution": "2h", "report": "3d"},
        "significant": {"response": "30m", "resolution": "4h"},
        "general": {"response": "30m", "resolution": "8h"},
        "anomaly": {"user_notice": "24h"},
    }[severity]
    assert {t.id: t.duration for t in CONTRACT.severities[severity].targets} == expected
