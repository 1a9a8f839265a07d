"""The year-end feed from the database: scope, year boundaries, --as-of, exports."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import openpyxl
from sqlmodel import Session, select

from monitor.breaches.models import Breach
from monitor.core.clock import FixedClock
from monitor.scoring.exporters import to_csv, to_json, write_xlsx
from monitor.scoring.feed import scoring_feed
from monitor.sla.service import SlaContext
from monitor.sla.words import words
from monitor.tickets.models import Ticket
from tests.conftest import NOW
from tests.helpers import make_ticket, post_event, review

ON_TIME = [("arrived", "T09:20"), ("resolved", "T10:30"), ("report_submitted", "T16:00")]


def major(
    session: Session, ctx: SlaContext, ref: str, day: str, late: bool = False, **kw: object
) -> None:
    events = [("reported", f"{day}T09:00:00+08:00")]
    for kind, at in ON_TIME:
        hour = "T13:30" if late and kind == "resolved" else at
        events.append((kind, f"{day}{hour}:00+08:00"))
    make_ticket(session, ctx, events, external_id=ref, **kw)


def indicator(feed: Any) -> dict[str, Any]:
    out: dict[str, Any] = (
        feed["indicators"][0]
        if isinstance(feed, dict)
        else (feed.model_dump(mode="json")["indicators"][0])
    )
    return out


def test_scope_is_major_faults_reported_in_the_local_year(
    session: Session, ctx: SlaContext
) -> None:
    major(session, ctx, "A", "2022-03-01", late=True)
    major(session, ctx, "B", "2022-06-01")
    make_ticket(
        session,
        ctx,
        [("reported", "2022-07-01T09:00:00+08:00")],
        severity="general",
        external_id="G",
    )
    # 00:10 on 1 January Beijing time is still 31 December in UTC: it belongs to 2023.
    make_ticket(
        session,
        ctx,
        [("reported", "2023-01-01T00:10:00+08:00"), ("arrived", "2023-01-01T02:00:00+08:00")],
        external_id="NY",
    )
    make_ticket(
        session,
        ctx,
        [("reported", "2021-12-31T23:50:00+08:00"), ("arrived", "2022-01-01T02:00:00+08:00")],
        external_id="OLD",
    )
    feed = scoring_feed(session, ctx, 2022).model_dump(mode="json")
    ind = indicator(feed)
    assert ind["tickets_in_scope"] == 2 and ind["occurrences"] == 1 and ind["score"] == 2.0
    assert ind["comment"] == "本年度共发生2次重大故障，其中1次故障处理超时。"
    assert ind["final"] is False and ind["breaches"] == {"pending": 1, "confirmed": 0, "waived": 0}
    assert {e["external_id"] for e in ind["evidence"]} == {"A", "B"}
    evidence = next(e for e in ind["evidence"] if e["external_id"] == "A")
    assert evidence["breaches"][0]["target"] == "resolution"
    assert evidence["events"][0]["type"] == "reported"
    assert indicator(scoring_feed(session, ctx, 2023))["tickets_in_scope"] == 1


def test_reviews_decide_final_and_waived_breaches_do_not_count(
    session: Session, ctx: SlaContext
) -> None:
    major(session, ctx, "A", "2022-03-01", late=True)
    major(session, ctx, "B", "2022-04-01", late=True)
    a, b = session.exec(select(Breach).order_by(Breach.id)).all()
    review(session, ctx, a, "confirmed", "", "监理")
    review(session, ctx, b, "waived", "市政数局批准的计划停机", "监理")
    session.commit()
    ind = indicator(scoring_feed(session, ctx, 2022))
    assert (ind["score"], ind["occurrences"], ind["final"]) == (2.0, 1, True)
    assert ind["breaches"] == {"pending": 0, "confirmed": 1, "waived": 1}


def test_as_of_ignores_what_was_recorded_later(
    session: Session, ctx: SlaContext, clock: FixedClock
) -> None:
    ticket = make_ticket(
        session,
        ctx,
        [
            {"id": "r", "type": "reported", "at": "2022-03-01T09:00:00+08:00"},
            {"id": "a", "type": "arrived", "at": "2022-03-01T09:50:00+08:00"},
            {"type": "resolved", "at": "2022-03-01T10:00:00+08:00"},
            {"type": "report_submitted", "at": "2022-03-02T10:00:00+08:00"},
        ],
    )
    before = NOW
    clock.at = NOW + timedelta(days=30)
    post_event(
        session,
        ctx,
        ticket,
        type="correction",
        corrects="a",
        at="2022-03-01T09:20:00+08:00",
        reason="按签到单更正",
    )
    assert indicator(scoring_feed(session, ctx, 2022, as_of=before))["occurrences"] == 1
    assert indicator(scoring_feed(session, ctx, 2022))["occurrences"] == 0
    # A review given after as_of is not seen either.
    assert (
        indicator(scoring_feed(session, ctx, 2022, as_of=before - timedelta(days=1)))[
            "tickets_in_scope"
        ]
        == 0
    )


def test_the_xlsx_and_csv_hold_the_figures_of_the_json(
    session: Session, ctx: SlaContext, tmp_path: Path
) -> None:
    major(session, ctx, "A", "2022-03-01", late=True)
    major(session, ctx, "B", "2022-06-01")
    feed = scoring_feed(session, ctx, 2022).model_dump(mode="json")
    data = json.loads(to_json(feed))
    ind = data["indicators"][0]
    path = tmp_path / "score.xlsx"
    write_xlsx(feed, words(ctx), ctx.tz, path)
    book = openpyxl.load_workbook(path)
    table = book["评分表"]
    header = [c.value for c in table[1]]
    assert header[:7] == [
        "一级指标",
        "二级指标",
        "三级指标",
        "分值",
        "评分标准",
        "评价得分",
        "评价意见",
    ]
    row = dict(zip(header, [c.value for c in table[2]], strict=True))
    assert row["三级指标"] == "系统故障响应或维护及时性"
    assert row["分值"] == ind["points"] and row["评价得分"] == ind["score"]
    assert row["评价意见"] == ind["comment"]
    assert (row["一级指标"], row["二级指标"]) == ("产出", "产出时效")
    evidence = book["佐证"]
    refs = {r[2] for r in evidence.iter_rows(min_row=2, values_only=True)}
    assert refs == {"A", "B"}
    kinds = {r[10] for r in evidence.iter_rows(min_row=2, values_only=True)}
    assert kinds == {"目标", "超时", "事件"}
    rows = list(csv.reader(io.StringIO(to_csv(feed).decode("utf-8-sig"))))
    assert rows[1][5] == str(ind["score"]) and rows[1][6] == ind["comment"]


def test_a_score_with_a_clock_still_running_is_not_final_and_says_why(
    session: Session, ctx: SlaContext, clock: FixedClock
) -> None:
    major(session, ctx, "DONE", "2026-03-01")
    make_ticket(session, ctx, [("reported", "2026-11-28T13:45:00+08:00")], external_id="OPEN")
    session.commit()
    ind = indicator(scoring_feed(session, ctx, 2026))
    assert (ind["final"], ind["breaches"]["pending"], ind["score"]) == (False, 0, 3.0)
    reasons = {r["reason"]: r for r in ind["not_final"]}
    assert set(reasons) == {"running", "not_started", "year_open"}  # arrival/resolution run
    assert reasons["running"]["tickets"] == ["OPEN"] and "仍在计时" in reasons["running"]["text"]
    # Once everything is done and no breach waits for review, the score is final.
    ticket = session.exec(select(Ticket).where(Ticket.external_id == "OPEN")).one()
    for kind, at in (("arrived", "T13:50"), ("resolved", "T13:55"), ("report_submitted", "T13:58")):
        post_event(session, ctx, ticket, type=kind, at=f"2026-11-28{at}:00+08:00")
    clock.at = NOW + timedelta(days=1)
    done = indicator(scoring_feed(session, ctx, 2026))
    # ... but not before the year is over: a fault reported in December still counts.
    assert done["final"] is False
    assert [(r["reason"], r["tickets"]) for r in done["not_final"]] == [("year_open", [])]
    assert "尚未结束" in done["not_final"][0]["text"]
    clock.at = datetime(2027, 1, 1, tzinfo=ctx.tz)
    done = indicator(scoring_feed(session, ctx, 2026))
    assert (done["final"], done["not_final"]) == (True, [])


def test_the_indexed_scope_equals_a_replay_of_every_ticket_at_every_as_of(
    session: Session, ctx: SlaContext, clock: FixedClock, monkeypatch: Any
) -> None:
    """The feed reads only tickets that can be major as of as_of; judging every ticket of
    the year instead gives the same bytes, before, between and after severity changes."""
    from monitor.scoring import feed as feed_module

    major(session, ctx, "A", "2022-03-01", late=True)
    major(session, ctx, "B", "2022-12-31")
    late_general = [
        ("reported", "2022-05-01T09:00:00+08:00"),
        ("acknowledged", "2022-05-01T09:10:00+08:00"),
        ("resolved", "2022-05-01T13:00:00+08:00"),
    ]
    make_ticket(session, ctx, late_general, severity="general", external_id="G")
    up = make_ticket(session, ctx, late_general, severity="general", external_id="UP")
    down = make_ticket(session, ctx, late_general, severity="major", external_id="DOWN")
    steps = [NOW]
    for ticket, severity in ((up, "major"), (down, "general"), (up, "general")):
        clock.at = steps[-1] + timedelta(days=1)
        steps.append(clock.at)
        post_event(
            session,
            ctx,
            ticket,
            type="severity_changed",
            severity=severity,
            at="2022-05-01T09:05:00+08:00",
        )
    clock.at = steps[-1] + timedelta(days=1)
    fast = [scoring_feed(session, ctx, 2022, as_of=t).model_dump_json() for t in steps]
    every = feed_module.judge_year
    monkeypatch.setattr(feed_module, "judge_year", lambda *a, **kw: every(*a[:5], severities=None))
    replay = [scoring_feed(session, ctx, 2022, as_of=t).model_dump_json() for t in steps]
    assert fast == replay
    in_scope = [indicator(json.loads(f))["tickets_in_scope"] for f in fast]
    assert in_scope == [3, 4, 3, 2]
