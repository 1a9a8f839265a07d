"""Small builders for test data."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from monitor.calendars.calendar import WorkCalendar, build_calendar, package_arrangements
from monitor.judging.flow import write_flow
from monitor.judging.jobs import detect_breaches
from monitor.sla.policy import Policy
from monitor.sla.service import SlaContext
from monitor.tickets.models import Event, Ticket
from monitor.tickets.schemas import EventIn, TicketIn
from monitor.tickets.service import Actor

T = TypeVar("T")

SH = ZoneInfo("Asia/Shanghai")
OPERATOR2 = Actor("ctgd-ops", "operator", "operator", "pool2")
ADMIN = Actor("admin", "admin", "operator")
# The specification's import example: the evaluation report's 2022-08-10 incident.
SPEC_TICKET: dict[str, Any] = {
    "external_id": "EX-0001",
    "pool": "pool2",
    "severity": "major",
    "title": "重要业务系统异常",
    "source": "user_report",
    "events": [
        {"type": "reported", "at": "2022-08-10T11:41:00+08:00"},
        {"type": "arrived", "at": "2022-08-10T12:05:00+08:00"},
        {"type": "resolved", "at": "2022-08-17T18:00:00+08:00"},
        {"type": "report_submitted", "at": "2022-08-29T10:00:00+08:00"},
    ],
}


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=SH)  # type: ignore[misc]


def make_ticket_in(
    events: Sequence[tuple[str, datetime | str]] | Sequence[dict[str, Any]],
    *,
    severity: str = "major",
    pool: str = "pool2",
    external_id: str | None = "EX-0001",
    **extra: Any,
) -> TicketIn:
    evs = [e if isinstance(e, dict) else {"type": e[0], "at": e[1]} for e in events]
    return TicketIn.model_validate(
        {
            "external_id": external_id,
            "pool": pool,
            "severity": severity,
            "title": extra.pop("title", "重要业务系统异常"),
            "source": "user_report",
            "events": evs,
            **extra,
        }
    )


def make_ticket(
    session: Session, ctx: SlaContext, events: Any, actor: Actor = ADMIN, **kw: Any
) -> Ticket:
    with write_flow(session, ctx) as flow:
        ticket = flow.create_ticket(make_ticket_in(events, **kw), actor)
    session.commit()
    return ticket


def post_event(
    session: Session, ctx: SlaContext, ticket: Ticket, actor: Actor = ADMIN, **fields: Any
) -> Event:
    with write_flow(session, ctx) as flow:
        event = flow.add_event(ticket, EventIn.model_validate(fields), actor)
    session.commit()
    return event


def counts(session: Session) -> tuple[int, int]:
    """Rows that a refused write must not add; ends the read so writers are not blocked."""
    from monitor.audit.models import AuditRecord

    session.rollback()
    result = (
        len(session.exec(select(Ticket)).all()) + len(session.exec(select(Event)).all()),
        len(session.exec(select(AuditRecord)).all()),
    )
    session.rollback()
    return result


def official() -> WorkCalendar:
    return build_calendar(package_arrangements())


def policy(
    targets: list[dict[str, Any]], severity: str = "major", effective_from: date = date(2019, 1, 1)
) -> Policy:
    return Policy.model_validate(
        {
            "version": "test",
            "effective_from": effective_from,
            "severities": {severity: {"name": severity, "targets": targets}},
        }
    )


def tamper(engine: Any, *statements: str) -> None:
    """Change rows behind the application's back, as someone with database access could
    (on PostgreSQL: the owner, who can switch the triggers off; the app role cannot)."""
    import sqlalchemy as sa

    from monitor.core.db import make_engine
    from tests.conftest import PG_URL

    if engine.dialect.name == "postgresql":
        engine = make_engine(PG_URL)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
        else:
            for (name,) in conn.execute(
                sa.text("SELECT name FROM sqlite_master WHERE type = 'trigger'")
            ).all():
                conn.execute(sa.text(f"DROP TRIGGER {name}"))
        for statement in statements:
            conn.execute(sa.text(statement))


def detect(session: Session, ctx: SlaContext) -> list[Any]:
    """One breach sweep through the write flow, committed; the changes it made."""
    with write_flow(session, ctx) as flow:
        sweep = detect_breaches(flow)
    session.commit()
    return sweep.changes


def review(
    session: Session, ctx: SlaContext, breach: Any, decision: str, reason: str, reviewer: str
) -> Any:
    """A supervisor's review through the write flow, committed."""
    with write_flow(session, ctx) as flow:
        done = flow.review(breach, decision, reason, reviewer)
    session.commit()
    return done


def ticket_body(
    external_id: str = "EX-0001", pool: str = "pool2", **extra: object
) -> dict[str, object]:
    return {
        "external_id": external_id,
        "pool": pool,
        "severity": "major",
        "title": "重要业务系统异常",
        "source": "user_report",
        "events": [
            {"type": "reported", "at": "2022-08-10T11:41:00+08:00"},
            {"type": "arrived", "at": "2022-08-10T12:30:00+08:00"},
            {"type": "resolved", "at": "2022-08-17T18:00:00+08:00"},
        ],
        **extra,
    }


def corrected_body(external_id: str) -> dict[str, object]:
    """A ticket whose own events include corrections of two of them."""
    body = ticket_body(external_id)
    body["events"] = [
        *body["events"],  # type: ignore[list-item]
        {
            "type": "correction",
            "corrects": "2",
            "at": "2022-08-10T12:05:00+08:00",
            "reason": "签到",
        },
        {
            "type": "correction",
            "corrects": "3",
            "at": "2022-08-10T13:00:00+08:00",
            "reason": "日志",
        },
    ]
    return body


def while_an_import_runs(db_url: str, request: Callable[[], T]) -> T:
    """`request`'s answer, sent while another process's import holds the creation of
    tickets (on SQLite, its write lock). The import ends after 10 s at most, so a request
    that would wait for it without end is answered then instead of hanging the test."""
    import threading

    from monitor.core.db import make_engine
    from monitor.tickets.service import lock_creation

    elsewhere = make_engine(db_url)
    answers: list[T] = []
    with Session(elsewhere) as importer:
        importer.connection()  # (SQLite: BEGIN IMMEDIATE, its write lock)
        lock_creation(importer)
        waiting = threading.Thread(target=lambda: answers.append(request()))
        waiting.start()
        waiting.join(10)
        importer.rollback()
        waiting.join(10)
    elsewhere.dispose()
    assert len(answers) == 1, "the request did not come back"
    return answers[0]
