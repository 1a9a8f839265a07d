"""Loading an official arrangement re-judges the targets it affects, and is audited."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, select

from monitor.audit.models import AuditRecord
from monitor.calendars.loader import arrangements_from
from monitor.calendars.service import current_calendar, load_arrangements
from monitor.core.clock import FixedClock
from monitor.judging.flow import write_flow
from monitor.judging.jobs import load_calendar
from monitor.sla.models import TargetState
from monitor.sla.service import SlaContext
from tests.helpers import local, make_ticket

NOTICE_2027 = {
    "years": {
        2027: {
            "source": "国务院办公厅关于2027年部分节假日安排的通知",
            "holidays": [{"name": "元旦", "date": "2027-01-01"}],
            "workdays": [],
        }
    }
}


def test_loading_next_years_calendar_rejudges_unknown_targets(
    session: Session, ctx: SlaContext, clock: FixedClock
) -> None:
    clock.at = local(2026, 12, 31, 12)
    ticket = make_ticket(
        session,
        ctx,
        [("reported", "2026-12-30T09:00:00+08:00"), ("resolved", "2026-12-30T10:00:00+08:00")],
    )
    report = session.get(TargetState, (ticket.id, "report"))
    assert report is not None and report.status == "unknown_calendar"
    assert report.unknown_year == 2027

    with write_flow(session, ctx) as flow:
        changed = load_calendar(
            flow, arrangements_from(NOTICE_2027, "f"), actor="zsj-admin", file_name="2027.yaml"
        )
    assert changed == 1
    session.commit()
    session.refresh(report)
    assert report.status == "running"
    # 12-31 (Thu), 1-1 holiday, weekend, 1-4 (Mon), 1-5 (Tue).
    assert report.deadline == local(2027, 1, 5, 23, 59, 59, 999999)
    audit = session.exec(select(AuditRecord).where(AuditRecord.action == "calendar.loaded")).one()
    assert audit.actor == "zsj-admin" and audit.payload["year"] == 2027


def test_the_latest_load_of_a_year_wins(session: Session, ctx: SlaContext) -> None:
    at = ctx.now()
    load_arrangements(session, arrangements_from(NOTICE_2027, "f"), actor="a", at=at, file_name="f")
    second = {
        "years": {
            2027: {
                "source": "更正",
                "holidays": [{"name": "元旦", "from": "2027-01-01", "to": "2027-01-03"}],
            }
        }
    }
    load_arrangements(
        session,
        arrangements_from(second, "f"),
        actor="a",
        at=at + timedelta(seconds=1),
        file_name="f",
    )
    session.commit()
    cal = current_calendar(session, ctx.settings.config_dir)
    assert cal.arrangement(2027).source == "更正"
