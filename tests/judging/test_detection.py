"""Breaches are recorded as soon as they are known: on write, and by the sweep."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from monitor.audit.models import AuditRecord
from monitor.breaches.models import Breach
from monitor.core import wake
from monitor.core.clock import FixedClock
from monitor.metrics.totals import reconcile
from monitor.scheduler.wake import next_wake
from monitor.sla.models import TargetState
from monitor.sla.service import SlaContext
from monitor.sla.timer import AFTER_DEADLINE
from tests.conftest import NOW
from tests.helpers import detect, make_ticket, post_event


def breaches(session: Session) -> list[tuple[int, str]]:
    return sorted((b.ticket_id, b.target) for b in session.exec(select(Breach)).all())


def test_a_late_event_records_the_breach_in_the_same_write(
    session: Session, ctx: SlaContext
) -> None:
    ticket = make_ticket(
        session,
        ctx,
        [("reported", "2022-08-10T11:41:00+08:00"), ("arrived", "2022-08-10T12:30:00+08:00")],
    )
    # Arrival was late; resolution ran out long ago with no stop: both known at once.
    assert breaches(session) == [(ticket.id, "arrival"), (ticket.id, "resolution")]
    row = session.exec(select(Breach).where(Breach.target == "arrival")).one()
    assert (row.review, row.detected_at) == ("pending", NOW)
    states = {s.target: s.status for s in session.exec(select(TargetState)).all()}
    assert states == {"arrival": "breached", "resolution": "breached", "report": "not_started"}


def test_next_wake_is_the_earliest_deadline_or_warning(session: Session, ctx: SlaContext) -> None:
    assert next_wake(session) is None
    make_ticket(session, ctx, [("reported", (NOW - timedelta(minutes=5)).isoformat())])
    # Major: arrival warns at 24 min (80 % of 30), the earliest instant.
    assert next_wake(session) == NOW - timedelta(minutes=5) + timedelta(minutes=24)


def test_a_write_with_an_earlier_deadline_rearms_the_wake(
    session: Session, ctx: SlaContext
) -> None:
    heard = []
    wake.subscribe(heard.append)
    try:
        make_ticket(
            session,
            ctx,
            [("reported", (NOW - timedelta(hours=1)).isoformat())],
            severity="anomaly",
            external_id="A",
        )
        make_ticket(
            session, ctx, [("reported", (NOW - timedelta(minutes=1)).isoformat())], external_id="B"
        )
    finally:
        wake.unsubscribe(heard.append)
    assert heard[-1] == NOW - timedelta(minutes=1) + timedelta(minutes=24)
    assert next_wake(session) == heard[-1]


def test_a_sweep_marks_exactly_the_clocks_past_their_deadline(
    session: Session, ctx: SlaContext, clock: FixedClock
) -> None:
    start = NOW - timedelta(minutes=10)
    late = make_ticket(session, ctx, [("reported", start.isoformat())], external_id="L")
    make_ticket(session, ctx, [("reported", NOW.isoformat())], external_id="N")
    assert breaches(session) == []
    deadline = start + timedelta(minutes=30)
    clock.at = deadline  # at the deadline itself nothing is breached yet
    assert [c.after for c in detect(session, ctx)] == ["at_risk"]
    clock.at = deadline + AFTER_DEADLINE
    changes = detect(session, ctx)
    session.commit()
    assert [(c.ticket_id, c.target, c.after) for c in changes] == [(late.id, "arrival", "breached")]
    assert breaches(session) == [(late.id, "arrival")]
    assert detect(session, ctx) == []  # a rerun changes nothing
    assert breaches(session) == [(late.id, "arrival")]


def test_a_correction_that_clears_a_breach_keeps_the_record(
    session: Session, ctx: SlaContext
) -> None:
    # Each correction moves the one breach record (moved, cleared, reinstated); the audit
    # log names every step and the running totals follow them.
    ticket = make_ticket(
        session,
        ctx,
        [
            {"id": "r", "type": "reported", "at": "2022-03-01T09:00:00+08:00"},
            {"id": "a", "type": "arrived", "at": "2022-03-01T09:50:00+08:00"},
            {"id": "f", "type": "resolved", "at": "2022-03-01T10:00:00+08:00"},
        ],
    )
    assert ticket.id is not None

    def correct(ref: str, at: str, reason: str) -> None:
        post_event(session, ctx, ticket, type="correction", corrects=ref, at=at, reason=reason)

    correct("r", "2022-03-01T09:10:00+08:00", "报障时间更正")  # deadline 09:40, still late
    correct("a", "2022-03-01T09:20:00+08:00", "按签到单更正")
    row = session.exec(select(Breach).where(Breach.target == "arrival")).one()
    assert row.cleared_at == NOW
    correct("a", "2022-03-01T09:45:00+08:00", "签到单有误")
    session.refresh(row)
    assert row.cleared_at is None
    assert row.deadline == datetime.fromisoformat("2022-03-01T09:40:00+08:00")
    assert len(session.exec(select(Breach).where(Breach.target == "arrival")).all()) == 1
    actions = session.exec(
        select(AuditRecord.action)
        .where(AuditRecord.entity == "breach", AuditRecord.entity_id == str(row.id))
        .order_by(col(AuditRecord.seq))
    ).all()
    assert actions == ["breach.detected", "breach.moved", "breach.cleared", "breach.reinstated"]
    assert reconcile(session) == 0
