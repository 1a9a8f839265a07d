"""The running metric totals always equal what the rows say, through every kind of write."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session, select

from monitor.breaches.models import Breach
from monitor.core.clock import FixedClock
from monitor.core.errors import InvalidInput
from monitor.demo.data import load_demo
from monitor.judging.flow import write_flow
from monitor.metrics.totals import computed, reconcile, stored
from monitor.sla.service import SlaContext
from tests.conftest import NOW
from tests.helpers import detect, make_ticket, post_event, review


def assert_in_step(session: Session) -> None:
    session.commit()
    have, truth = stored(session), computed(session)
    assert have.keys() == truth.keys()
    for key, (count, total) in truth.items():
        assert have[key][0] == count, key
        assert have[key][1] == pytest.approx(total), key
    session.rollback()


def test_totals_follow_events_corrections_severity_reviews_and_sweeps(
    session: Session, ctx: SlaContext, clock: FixedClock
) -> None:
    ticket = make_ticket(
        session,
        ctx,
        [
            {"id": "r", "type": "reported", "at": "2026-11-28T13:00:00+08:00"},
            {"id": "a", "type": "arrived", "at": "2026-11-28T13:50:00+08:00"},
        ],
    )
    assert_in_step(session)
    post_event(
        session,
        ctx,
        ticket,
        type="correction",
        corrects="a",
        at="2026-11-28T13:20:00+08:00",
        reason="签到单",
    )
    assert_in_step(session)
    post_event(
        session,
        ctx,
        ticket,
        type="severity_changed",
        severity="general",
        at="2026-11-28T13:30:00+08:00",
    )
    assert_in_step(session)
    post_event(session, ctx, ticket, type="resolved", at="2026-11-28T13:55:00+08:00")
    assert_in_step(session)
    other = make_ticket(session, ctx, [("reported", "2026-11-28T13:40:00+08:00")], external_id="B")
    clock.at = NOW + timedelta(hours=2)
    detect(session, ctx)
    assert_in_step(session)
    breach = session.exec(select(Breach).where(Breach.ticket_id == other.id)).first()
    assert breach is not None
    review(session, ctx, breach, "waived", "计划停机", "监理")
    assert_in_step(session)
    review(session, ctx, breach, "confirmed", "", "监理")
    assert_in_step(session)


def test_a_refused_write_leaves_the_totals_alone(session: Session, ctx: SlaContext) -> None:
    ticket = make_ticket(session, ctx, [("reported", "2026-11-28T13:00:00+08:00")])
    before = stored(session)
    session.rollback()
    with pytest.raises(InvalidInput):
        post_event(session, ctx, ticket, type="arrived", at="2026-11-28T12:00:00+08:00")
    session.rollback()
    assert stored(session) == before
    assert_in_step(session)


def test_the_demo_year_and_reconcile(session: Session, ctx: SlaContext) -> None:
    demo(session, ctx)
    assert_in_step(session)
    assert reconcile(session) == 0
    session.commit()
    assert_in_step(session)


def demo(session: Session, ctx: SlaContext) -> int:
    with write_flow(session, ctx) as flow:
        return load_demo(flow)
