"""The write path reads a timeline as plain rows and writes a new ticket in batches; what it
stores must equal a full replay of the ticket's events through the pure clock."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, col, select

from monitor.audit.verify import verify
from monitor.breaches.models import Breach
from monitor.judging.flow import write_flow
from monitor.metrics.totals import reconcile
from monitor.sla.models import TargetState
from monitor.sla.service import SlaContext
from monitor.tickets.models import Event, EventRow, Ticket
from monitor.tickets.schemas import EventIn
from monitor.tickets.service import event_rows, judge_ticket, ticket_events
from tests.helpers import ADMIN, local, make_ticket, post_event


def stored(session: Session, ticket: Ticket) -> dict[str, tuple[object, ...]]:
    rows = session.exec(select(TargetState).where(TargetState.ticket_id == ticket.id)).all()
    return {s.target: (s.status, s.start, s.deadline, s.stop, s.explain) for s in rows}


def replayed(session: Session, ctx: SlaContext, ticket: Ticket) -> dict[str, tuple[object, ...]]:
    assert ticket.id is not None
    judgement = judge_ticket(ctx, ticket, ticket_events(session, ticket.id))
    return {t.target: (t.status, t.start, t.deadline, t.stop, t.explain) for t in judgement.targets}


def test_appending_to_a_long_ticket_stores_what_a_full_replay_judges(
    session: Session, ctx: SlaContext
) -> None:
    start = local(2026, 11, 2, 9, 0)
    ticket = make_ticket(
        session,
        ctx,
        [
            {"type": "reported", "at": start.isoformat(), "id": "r"},
            {"type": "arrived", "at": (start + timedelta(minutes=50)).isoformat(), "id": "a"},
            # A correction inside the same write names an event of that write.
            {
                "type": "correction",
                "corrects": "a",
                "at": (start + timedelta(minutes=20)).isoformat(),
                "reason": "到场时间登记错误",
            },
        ],
        external_id="LONG-1",
    )
    assert stored(session, ticket) == replayed(session, ctx, ticket)
    at = start + timedelta(hours=1)
    for i in range(60):
        at += timedelta(minutes=7)
        kind = ("resolved", "reopened", "comment", "acknowledged")[i % 4]
        post_event(session, ctx, ticket, type=kind, at=at.isoformat(), note=f"第{i}次")
        if i % 9 == 5:  # corrections rewrite history: an earlier event moves
            moved = at - timedelta(minutes=3)
            post_event(
                session,
                ctx,
                ticket,
                type="correction",
                corrects=str(i + 2),
                at=moved.isoformat(),
                reason="时间更正",
            )
        session.refresh(ticket)
        assert stored(session, ticket) == replayed(session, ctx, ticket), f"after append {i}"
    seqs = [e.seq for e in ticket_events(session, ticket.id or 0)]
    assert seqs == list(range(1, len(seqs) + 1))
    assert verify(session).ok


def test_a_new_tickets_events_are_stored_in_order_with_their_corrections(
    session: Session, ctx: SlaContext
) -> None:
    start = local(2022, 8, 10, 11, 41)
    ticket = make_ticket(
        session,
        ctx,
        [
            {"type": "reported", "at": start.isoformat()},
            {"type": "arrived", "at": (start + timedelta(hours=1)).isoformat()},
            {
                "type": "correction",
                "corrects": "2",
                "at": (start + timedelta(minutes=25)).isoformat(),
                "reason": "更正",
            },
            {"type": "resolved", "at": (start + timedelta(hours=3)).isoformat()},
        ],
    )
    events = session.exec(
        select(Event).where(Event.ticket_id == ticket.id).order_by(col(Event.seq))
    ).all()
    assert [e.type for e in events] == ["reported", "arrived", "correction", "resolved"]
    assert events[2].corrects_id == events[1].id
    assert [e.id for e in events] == sorted(e.id for e in events)  # type: ignore[type-var]
    assert stored(session, ticket) == replayed(session, ctx, ticket)
    # Arrival met after the correction; resolution late: the breaches a replay finds.
    breached = [t for t, v in replayed(session, ctx, ticket).items() if v[0] == "breached"]
    assert "arrival" not in breached and "resolution" in breached
    assert sorted(b.target for b in session.exec(select(Breach)).all()) == sorted(breached)
    assert verify(session).ok


def test_several_writes_to_one_ticket_in_one_transaction_store_what_a_replay_judges(
    session: Session, ctx: SlaContext
) -> None:
    # settle writes what it changed with one flush; a second judgement of the same ticket in
    # the same transaction must still see the first one's deleted states and closed findings.
    start = local(2026, 11, 2, 9, 0)
    ticket = make_ticket(
        session, ctx, [{"type": "reported", "at": start.isoformat()}], severity="general"
    )
    general = set(stored(session, ticket))
    with write_flow(session, ctx) as flow:
        for i, severity in enumerate(("major", "general", "major", "general")):
            at = start + timedelta(minutes=10 * (i + 1))
            change = {"type": "severity_changed", "at": at.isoformat(), "severity": severity}
            flow.add_event(ticket, EventIn.model_validate(change), ADMIN)
        resolved = start + timedelta(hours=1)
        flow.add_event(ticket, EventIn.model_validate({"type": "resolved", "at": resolved}), ADMIN)
    session.commit()
    assert set(stored(session, ticket)) == general
    assert stored(session, ticket) == replayed(session, ctx, ticket)
    assert reconcile(session) == 0  # the running totals counted every move once
    assert verify(session).ok


def test_a_state_read_earlier_in_the_transaction_reads_what_an_event_rewrote(
    session: Session, ctx: SlaContext
) -> None:
    # States are rewritten by Core statements: an ORM copy loaded before (a breach's overrun
    # reads one) must not keep answering with what it held.
    start = local(2026, 11, 2, 9, 0)
    ticket = make_ticket(session, ctx, [{"type": "reported", "at": start.isoformat()}])
    arrival = session.get(TargetState, (ticket.id, "arrival"))
    assert arrival is not None and arrival.stop is None
    with write_flow(session, ctx) as flow:
        arrived = EventIn.model_validate({"type": "arrived", "at": start + timedelta(minutes=9)})
        flow.add_event(ticket, arrived, ADMIN)
    again = session.get(TargetState, (ticket.id, "arrival"))
    assert again is not None and again.stop == start + timedelta(minutes=9)
    assert again.status == "met"


def test_a_timeline_read_by_the_driver_equals_what_the_orm_loads(
    session: Session, ctx: SlaContext
) -> None:
    # The write flow reads a ticket's events by the driver (`event_rows`): instants aware
    # UTC to the microsecond, evidence lists, severities and reasons as the ORM loads them.
    start = local(2026, 11, 2, 9, 0, 7, 123456)
    ticket = make_ticket(
        session,
        ctx,
        [
            {"type": "reported", "at": start.isoformat(), "id": "r"},
            {"type": "severity_changed", "at": start + timedelta(minutes=3), "severity": "general"},
            {"type": "arrived", "at": start + timedelta(minutes=40), "note": "到场\t检查"},
            {"type": "correction", "corrects": "r", "at": start, "reason": "报障时间"},
            {"type": "resolved", "at": start + timedelta(hours=2), "evidence": ["日志截图"]},
        ],
    )
    assert ticket.id is not None
    loaded = ticket_events(session, ticket.id)
    read = event_rows(session, ticket.id)
    fields = EventRow._fields
    assert [[getattr(e, f) for f in fields] for e in read] == [
        [getattr(e, f) for f in fields] for e in loaded
    ]
    assert read[0].occurred_at == start and read[0].occurred_at.tzinfo is not None
    assert read[4].evidence == ["日志截图"] and read[0].evidence == []
