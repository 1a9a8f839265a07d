"""Data-quality findings are raised on write, closed when the condition clears."""

from __future__ import annotations

from datetime import date, timedelta

from sqlmodel import Session

from monitor.breaches.findings import calendar_findings, list_findings
from monitor.core.clock import FixedClock
from monitor.judging.flow import write_flow
from monitor.judging.jobs import refresh_findings
from monitor.sla.service import SlaContext
from monitor.tickets.schemas import EventIn
from tests.conftest import NOW
from tests.helpers import ADMIN, make_ticket, official, post_event


def kinds(session: Session, open_only: bool = True) -> list[str]:
    return sorted(f.kind for f in list_findings(session, open_only=open_only))


def test_resolution_without_evidence_is_found_and_cleared_by_evidence(
    session: Session, ctx: SlaContext
) -> None:
    ticket = make_ticket(
        session,
        ctx,
        [
            ("reported", "2026-11-28T13:00:00+08:00"),
            ("arrived", "2026-11-28T13:10:00+08:00"),
            ("resolved", "2026-11-28T13:40:00+08:00"),
        ],
    )
    assert kinds(session) == ["no_evidence"]
    post_event(
        session,
        ctx,
        ticket,
        type="evidence_added",
        at="2026-11-28T13:50:00+08:00",
        evidence=["恢复截图.png"],
    )
    assert kinds(session) == []
    assert kinds(session, open_only=False) == ["no_evidence"]


def test_back_dated_entries_late_verification_and_impossible_order(
    session: Session, ctx: SlaContext
) -> None:
    make_ticket(
        session,
        ctx,
        [
            ("reported", "2026-11-10T09:00:00+08:00"),
            ("arrived", "2026-11-10T10:30:00+08:00"),
            {"type": "resolved", "at": "2026-11-10T10:00:00+08:00", "evidence": ["x.png"]},
            ("verified", "2026-11-20T10:00:00+08:00"),
        ],
    )
    found = {f.kind: f.detail for f in list_findings(session, open_only=True)}
    # Every event was entered on 11-28, days after it happened.
    assert "late_entry" in found and "迟" in found["late_entry"]
    assert "late_verification" in found
    assert "解决早于到场" in found["impossible_order"]


def test_a_long_open_ticket_is_overdue_after_the_daily_job(
    session: Session, ctx: SlaContext, clock: FixedClock
) -> None:
    make_ticket(session, ctx, [("reported", (NOW - timedelta(minutes=10)).isoformat())])
    assert "overdue_open" not in kinds(session)
    clock.at = NOW + timedelta(hours=7)
    with write_flow(session, ctx) as flow:
        refresh_findings(flow)
    assert "overdue_open" in kinds(session)


def test_next_years_calendar_is_wanted_from_15_november() -> None:
    cal = official()
    assert calendar_findings(cal, date(2026, 11, 14)) == []
    found = calendar_findings(cal, date(2026, 11, 15))
    assert [f.kind for f in found] == ["calendar_missing"] and "2027" in found[0].detail
    assert calendar_findings(cal, date(2025, 12, 1)) == []


def test_a_finding_read_earlier_in_the_transaction_shows_its_close(
    session: Session, ctx: SlaContext
) -> None:
    # Findings are closed by Core statements: an ORM copy loaded before must not keep
    # answering that it is open.
    ticket = make_ticket(
        session,
        ctx,
        [("reported", "2026-11-28T13:00:00+08:00"), ("resolved", "2026-11-28T13:40:00+08:00")],
    )
    (finding,) = list_findings(session, open_only=True)
    assert finding.kind == "no_evidence" and finding.closed_at is None
    with write_flow(session, ctx) as flow:
        added = {"type": "evidence_added", "at": "2026-11-28T13:50:00+08:00", "evidence": ["图"]}
        flow.add_event(ticket, EventIn.model_validate(added), ADMIN)
    assert finding.closed_at is not None
