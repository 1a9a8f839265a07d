"""An append to a ticket without corrections is judged by the few events the rules turn on,
read by index (`tickets.service.append_event`); what it stores must equal what judging the
whole timeline stores: target states, the ticket's status and severity, open findings."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import Session, col, select

from monitor.breaches.models import Finding
from monitor.core.errors import InvalidInput
from monitor.judging.flow import write_flow
from monitor.sla.models import TargetState
from monitor.sla.service import SlaContext
from monitor.sla.vocab import EVENT_TYPES
from monitor.tickets.models import Ticket
from monitor.tickets.schemas import EventIn
from monitor.tickets.service import READ_WHOLE_UP_TO, ticket_events
from tests.helpers import ADMIN, make_ticket

# Every kind but the report (a ticket has one) and corrections (they read the whole timeline).
KINDS = tuple(t for t in EVENT_TYPES if t not in ("reported", "correction"))
SEVERITIES = ("major", "significant", "general", "anomaly")
_tickets = itertools.count(1)
EVIDENCE = "https://ops.example/evidence/1"
SHOWN = [c.name for c in TargetState.__table__.columns]  # type: ignore[attr-defined]

event = st.fixed_dictionaries(
    {
        # The kinds whose order the rules weigh come more often.
        "type": st.sampled_from(
            KINDS + ("resolved", "reopened", "verified", "report_submitted") * 3
        ),
        # Half-hour steps over five days: many events share an instant (order by seq).
        "step": st.integers(min_value=0, max_value=240),
        "severity": st.sampled_from(SEVERITIES),
        "evidence": st.sampled_from((False, False, True)),
    }
)


def long_ticket(ctx: SlaContext, session: Session, severity: str, name: str) -> Ticket:
    """Reported six days ago (most events are then entered late: findings), with comments
    enough that an append reads a partial timeline."""
    reported = ctx.now() - timedelta(days=6)
    events = [{"type": "reported", "at": reported.isoformat()}]
    events += [{"type": "comment", "at": reported.isoformat()}] * READ_WHOLE_UP_TO
    return make_ticket(
        session, ctx, events, severity=severity, external_id=f"{name}-{next(_tickets)}"
    )


def snapshot(session: Session, ticket: Ticket) -> dict[str, Any]:
    """What a user sees of a judgement: each target's state, the ticket, its open findings."""
    states = session.exec(select(TargetState).where(TargetState.ticket_id == ticket.id)).all()
    findings = session.exec(
        select(Finding).where(Finding.ticket_id == ticket.id, col(Finding.closed_at).is_(None))
    ).all()
    session.refresh(ticket)
    return {
        "ticket": (ticket.status, ticket.current_severity, ticket.reported_at),
        "states": {
            s.target: {c: getattr(s, c) for c in SHOWN if c not in ("judged_at",)} for s in states
        },
        "findings": {f.key: f.detail for f in findings},
    }


def append_and_compare(
    session: Session, ctx: SlaContext, ticket: Ticket, fields: dict[str, Any]
) -> None:
    """Append by the partial timeline, then judge the whole: nothing a user sees may move."""
    with write_flow(session, ctx) as flow:
        flow.add_event(ticket, EventIn.model_validate(fields), ADMIN)
        assert flow.last is not None and not flow.last.complete
        judged_by = len(flow.last.events)
    session.commit()
    partial = snapshot(session, ticket)
    with write_flow(session, ctx) as flow:
        whole = flow.rejudge(ticket)  # reads every event
        assert whole.complete and len(whole.events) >= judged_by
    assert snapshot(session, ticket) == partial, f"after {fields}"
    session.rollback()


def examples(count: int) -> settings:
    """Hypothesis' settings for these tests: each example writes to the test's database."""
    return settings(
        max_examples=count,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


@examples(50)
@given(st.sampled_from(SEVERITIES), st.lists(event, min_size=1, max_size=16))
def test_an_append_judged_by_part_of_the_timeline_stores_what_the_whole_judges(
    session: Session, ctx: SlaContext, severity: str, events: list[dict[str, Any]]
) -> None:
    append_each(session, ctx, severity, events, step=timedelta(minutes=30))


def append_each(
    session: Session,
    ctx: SlaContext,
    severity: str,
    events: list[dict[str, Any]],
    step: timedelta,
) -> None:
    """Drawn events appended one by one to a new long ticket, each compared with the whole."""
    ticket = long_ticket(ctx, session, severity, "PART")
    reported = ticket.reported_at
    for e in events:
        fields: dict[str, Any] = {
            "type": e["type"],
            "at": (reported + step * e["step"]).isoformat(),
        }
        if e["type"] == "severity_changed":
            fields["severity"] = e["severity"]
        if e["evidence"]:
            fields["evidence"] = [EVIDENCE]
        append_and_compare(session, ctx, ticket, fields)


# Each seeks an event that is neither the first nor the last of its kind nor the newest.
SEEKING = {
    "the report after the last resolution (not the first report)": [
        ("resolved", 60),
        ("report_submitted", 30),
        ("report_submitted", 120),
        ("comment", 130),
    ],
    # (read by the last one instead, the user would seem to have confirmed 90 h late, not 10)
    "the first verification after the last resolution (not the first or last)": [
        ("resolved", 60),
        ("verified", 30),
        ("verified", 60 + 10 * 60),
        ("verified", 60 + 90 * 60),
        ("comment", 100),
    ],
    "evidence after the last resolution on an event in the middle": [
        ("comment", 10),
        ("resolved", 60),
        ("comment", 70, EVIDENCE),
        ("comment", 80),
    ],
    # Three events at one instant, in seq order: the reopen clears the verification before
    # it and not the resolution after it, so the ticket is resolved, not closed.
    "the reopen after the last verification, at the instant of a later resolution": [
        ("reopened", 10),
        ("verified", 60),
        ("reopened", 60),
        ("resolved", 60),
        ("comment", 100),
    ],
    "the reopen after the last resolution (not the first reopen)": [
        ("resolved", 20),
        ("reopened", 30),
        ("resolved", 60),
        ("reopened", 70),
        ("reopened", 80),
        ("comment", 90),
    ],
}


@pytest.mark.parametrize("history", SEEKING.values(), ids=list(SEEKING))
def test_each_event_the_rules_seek_is_read(
    session: Session, ctx: SlaContext, history: list[tuple[Any, ...]]
) -> None:
    ticket = long_ticket(ctx, session, "major", "SEEK")
    reported = ticket.reported_at
    for kind, minutes, *evidence in history:
        at = reported + timedelta(minutes=minutes)
        append_and_compare(session, ctx, ticket, {"type": kind, "at": at, "evidence": evidence})
    append_and_compare(session, ctx, ticket, {"type": "comment", "at": ctx.now()})


def test_an_append_to_a_long_ticket_reads_only_what_the_rules_turn_on(
    session: Session, ctx: SlaContext
) -> None:
    reported = ctx.now() - timedelta(days=3)
    history = [{"type": "reported", "at": reported.isoformat()}]
    for i in range(1, 200):
        kind = "resolved" if i % 2 else "reopened"
        history.append({"type": kind, "at": (reported + timedelta(minutes=i)).isoformat()})
    ticket = make_ticket(session, ctx, history, severity="major", external_id="LONG-PART")
    at = reported + timedelta(minutes=200)
    with write_flow(session, ctx) as flow:
        flow.add_event(ticket, EventIn(type="resolved", at=at), ADMIN)
        assert flow.last is not None
        read = flow.last.events
    session.commit()
    # The first and last of each kind, the reopen after the last resolution: not 201 events.
    assert len(read) < 10, [(e.seq, e.type) for e in read]
    assert ticket.status == "resolved"
    assert len(ticket_events(session, ticket.id or 0)) == 201


def test_a_partial_timeline_refuses_what_the_whole_refuses(
    session: Session, ctx: SlaContext
) -> None:
    reported = ctx.now() - timedelta(days=1)
    history = [{"type": "reported", "at": reported.isoformat(), "id": "r"}]
    for i in range(1, 40):
        at = reported + timedelta(minutes=i)
        history.append({"type": "comment", "at": at.isoformat(), "id": f"c{i}"})
    ticket = make_ticket(session, ctx, history, severity="major", external_id="LONG-REFUSE")
    cases = [
        # An id used by an event in the middle of the timeline, which the part does not hold.
        ({"type": "comment", "at": reported.isoformat(), "id": "c35"}, "id"),
        ({"type": "arrived", "at": (reported - timedelta(minutes=1)).isoformat()}, "at"),
    ]
    for fields, loc in cases:
        with write_flow(session, ctx) as flow:
            try:
                flow.add_event(ticket, EventIn.model_validate(fields), ADMIN)
            except InvalidInput as exc:
                assert [p.loc for p in exc.problems] == [loc], exc.problems
            else:
                raise AssertionError(f"{fields} was accepted")
        session.rollback()
    assert len(ticket_events(session, ticket.id or 0)) == 40
    limited = ctx.settings.model_copy(update={"max_events_per_ticket": 40})
    small = SlaContext(limited, ctx.catalog, ctx.policies, ctx.calendar, ctx.clock)
    with write_flow(session, small) as flow:
        try:
            flow.add_event(ticket, EventIn(type="arrived", at=ctx.now()), ADMIN)
        except InvalidInput as exc:
            assert "already has 40 events" in exc.problems[0].msg
        else:
            raise AssertionError("the 41st event was accepted")
    session.rollback()
