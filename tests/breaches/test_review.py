"""The supervisor's review: confirm, or waive with a reason; later reviews supersede."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session, select

from monitor.audit.verify import verify
from monitor.breaches.models import Breach, BreachReview
from monitor.breaches.service import get_breach, list_breaches
from monitor.core.clock import FixedClock
from monitor.core.errors import InvalidInput
from monitor.sla.service import SlaContext
from tests.conftest import NOW
from tests.helpers import make_ticket, review

LATE = [
    ("reported", "2022-08-10T11:41:00+08:00"),
    ("arrived", "2022-08-10T12:30:00+08:00"),
    ("resolved", "2022-08-10T13:00:00+08:00"),
    ("report_submitted", "2022-08-11T10:00:00+08:00"),
]


@pytest.fixture
def breach(session: Session, ctx: SlaContext) -> Breach:
    make_ticket(session, ctx, LATE)
    return session.exec(select(Breach)).one()


def test_waiving_needs_a_reason_and_writes_nothing_without_one(
    session: Session, ctx: SlaContext, breach: Breach
) -> None:
    with pytest.raises(InvalidInput) as exc:
        review(session, ctx, breach, "waived", "  ", "监理-张工")
    session.rollback()
    assert exc.value.problems[0].loc == "reason"
    assert session.exec(select(BreachReview)).all() == []
    assert get_breach(session, breach.id or 0).review == "pending"


def test_a_later_review_supersedes_and_both_stay_on_record(
    session: Session, ctx: SlaContext, breach: Breach, clock: FixedClock
) -> None:
    first = review(session, ctx, breach, "confirmed", "", "监理-张工")
    clock.at = NOW + timedelta(hours=1)
    second = review(session, ctx, breach, "waived", "停电属不可抗力，经市政数局同意", "监理-李工")
    session.commit()
    assert second.supersedes_id == first.id
    assert [r.decision for r in session.exec(select(BreachReview)).all()] == ["confirmed", "waived"]
    assert breach.review == "waived" and breach.reviewed_at == NOW + timedelta(hours=1)
    assert verify(session).ok


def test_listing_filters_pending_year_and_pool(
    session: Session, ctx: SlaContext, breach: Breach
) -> None:
    assert len(list_breaches(session, pending=True, year=2022, tz=ctx.tz)) == 1
    assert list_breaches(session, year=2021, tz=ctx.tz) == []
    assert list_breaches(session, pool="pool1") == []
    review(session, ctx, breach, "confirmed", "", "监理-张工")
    assert list_breaches(session, pending=True) == []


def test_a_new_year_in_beijing_starts_at_local_midnight(session: Session, ctx: SlaContext) -> None:
    make_ticket(
        session,
        ctx,
        [("reported", "2023-01-01T00:10:00+08:00"), ("arrived", "2023-01-01T01:10:00+08:00")],
        external_id="NY",
    )
    got = {
        (r.ticket.external_id, r.breach.target)
        for r in list_breaches(session, year=2023, tz=ctx.tz)
    }
    assert got == {("NY", "arrival"), ("NY", "resolution")}
    assert list_breaches(session, year=2022, tz=ctx.tz) == []
