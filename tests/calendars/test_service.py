"""Loading an official arrangement re-judges the targets it affects, and is audited."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from monitor.audit.models import AuditRecord
from monitor.calendars.loader import arrangements_from
from monitor.calendars.service import current_calendar, load_arrangements
from monitor.core.clock import FixedClock
from monitor.core.db import session_scope
from monitor.judging.flow import write_flow
from monitor.judging.jobs import load_calendar
from monitor.sla.models import TargetState
from monitor.sla.service import SlaContext
from tests.helpers import local, make_ticket, ticket_body

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


def test_a_running_server_judges_with_a_calendar_another_process_loaded(
    client: TestClient, auth: Any, engine: Engine, clock: FixedClock
) -> None:
    # The server keeps its calendar between requests and asks the database for the newest
    # load on each write: a year loaded by `sla-monitor calendar load` counts at once.
    clock.at = local(2026, 12, 31, 12)

    def report_deadline(external_id: str) -> tuple[str, str | None]:
        events = [
            {"type": "reported", "at": "2026-12-30T09:00:00+08:00"},
            {"type": "resolved", "at": "2026-12-30T10:00:00+08:00"},
        ]
        body = ticket_body(external_id, events=events)
        r = client.post("/api/v1/tickets", json=body, headers=auth["admin"])
        assert r.status_code == 201, r.text
        report = next(t for t in r.json()["targets"] if t["id"] == "report")
        return report["status"], report["deadline"]

    assert report_deadline("Y-1") == ("unknown_calendar", None)
    with session_scope(engine) as other:  # as the CLI would, in a process of its own
        load_arrangements(
            other,
            arrangements_from(NOTICE_2027, "通知"),
            actor="zsj-admin",
            at=clock.at,
            file_name="2027.yaml",
        )
    status, deadline = report_deadline("Y-2")
    assert status == "running" and deadline is not None and deadline.startswith("2027-01-05")
