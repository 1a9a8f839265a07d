"""Writing tickets and events through the service layer, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from monitor.audit.verify import verify
from monitor.core.clock import FixedClock
from monitor.core.errors import InvalidInput, TicketNotFound
from monitor.core.settings import Settings
from monitor.judging.flow import WriteFlow
from monitor.sla.models import TargetState
from monitor.sla.service import SlaContext, load_context
from monitor.tickets.models import Event
from monitor.tickets.schemas import TicketIn
from monitor.tickets.service import SYSTEM, find_ticket, ticket_out
from tests.conftest import NOW
from tests.helpers import (
    OPERATOR2,
    counts,
    local,
    make_ticket,
    make_ticket_in,
    post_event,
    ticket_body,
)

SEED = [
    ("reported", "2022-08-10T11:41:00+08:00"),
    ("arrived", "2022-08-10T12:05:00+08:00"),
    ("resolved", "2022-08-17T18:00:00+08:00"),
    ("report_submitted", "2022-08-29T10:00:00+08:00"),
]


def states(session: Session, ticket_id: int) -> dict[str, TargetState]:
    return {
        s.target: s
        for s in session.exec(select(TargetState).where(TargetState.ticket_id == ticket_id)).all()
    }


def test_a_ticket_is_stored_with_its_events_and_judged_targets(
    session: Session, ctx: SlaContext
) -> None:
    ticket = make_ticket(session, ctx, SEED)
    assert ticket.id is not None
    got = states(session, ticket.id)
    assert {k: v.status for k, v in got.items()} == {
        "arrival": "met",
        "resolution": "breached",
        "report": "breached",
    }
    assert got["resolution"].deadline == local(2022, 8, 10, 13, 41)
    assert got["resolution"].deadline.tzinfo is not None
    assert ticket.policy_version == "contract-2019"
    assert ticket.reported_at == local(2022, 8, 10, 11, 41)
    events = session.exec(
        select(Event).where(Event.ticket_id == ticket.id).order_by(col(Event.seq))
    ).all()
    assert [e.seq for e in events] == [1, 2, 3, 4]
    assert all(e.recorded_at == NOW for e in events)
    assert verify(session).ok


def test_a_time_without_offset_is_read_in_the_configured_zone(
    session: Session, ctx: SlaContext
) -> None:
    ticket = make_ticket(session, ctx, [("reported", "2022-08-10 11:41")])
    assert ticket.reported_at == local(2022, 8, 10, 11, 41)


def test_events_appended_later_rejudge_in_the_same_transaction(
    session: Session, ctx: SlaContext
) -> None:
    ticket = make_ticket(session, ctx, [("reported", "2026-11-28T13:40:00+08:00")])
    assert ticket.id is not None
    assert states(session, ticket.id)["arrival"].status == "running"
    post_event(session, ctx, ticket, type="arrived", at="2026-11-28T13:55:00+08:00")
    assert states(session, ticket.id)["arrival"].status == "met"
    assert ticket.status == "open"
    post_event(session, ctx, ticket, type="resolved", at="2026-11-28T13:58:00+08:00")
    post_event(session, ctx, ticket, type="verified", at="2026-11-28T13:59:00+08:00")
    assert ticket.status == "closed"


def test_a_correction_moves_the_clock_and_keeps_the_original(
    session: Session, ctx: SlaContext
) -> None:
    ticket = make_ticket(
        session,
        ctx,
        [
            {"id": "r", "type": "reported", "at": "2022-03-01T09:00:00+08:00"},
            {"id": "a", "type": "arrived", "at": "2022-03-01T09:50:00+08:00"},
        ],
    )
    assert ticket.id is not None
    assert states(session, ticket.id)["arrival"].status == "breached"
    post_event(
        session,
        ctx,
        ticket,
        type="correction",
        corrects="a",
        at="2022-03-01T09:20:00+08:00",
        reason="按现场签到单更正",
    )
    assert states(session, ticket.id)["arrival"].status == "met"
    out = ticket_out(session, ctx, ticket)
    arrived = next(e for e in out.events if e.id == "a")
    assert arrived.at.startswith("2022-03-01T09:50")
    assert arrived.corrected_at is not None and arrived.corrected_at.startswith("2022-03-01T09:20")
    assert out.events[-1].corrects == "a"


def test_json_shape_of_targets(session: Session, ctx: SlaContext) -> None:
    ticket = make_ticket(session, ctx, SEED)
    out = ticket_out(session, ctx, ticket).model_dump(mode="json")
    first = out["targets"][0]
    assert [t["id"] for t in out["targets"]] == ["arrival", "resolution", "report"]
    assert set(first) >= {"id", "status", "start", "deadline", "stop", "explain"}
    assert first["deadline"] == "2022-08-10T12:11:00+08:00"


def test_find_by_id_external_id_or_pool_and_external_id(session: Session, ctx: SlaContext) -> None:
    ticket = make_ticket(session, ctx, SEED)
    assert find_ticket(session, str(ticket.id)).id == ticket.id
    assert find_ticket(session, "EX-0001").id == ticket.id
    assert find_ticket(session, "pool2:EX-0001").id == ticket.id
    with pytest.raises(TicketNotFound):
        find_ticket(session, "EX-0001", pool="pool1")


# Refusals: each names the field and writes nothing -------------------------------------

REFUSALS = [
    ({"pool": "pool9"}, SEED, "pool", "unknown pool 'pool9'"),
    ({"severity": "catastrophic"}, SEED, "severity", "unknown severity 'catastrophic'"),
    (
        {},
        [("reported", "2022-08-10T11:41:00+08:00"), ("arrived", "2022-08-10T11:00:00+08:00")],
        "events[1].at",
        "before the ticket's reported time",
    ),
    ({}, [("reported", "2026-11-28T14:10:00+08:00")], "events[0].at", "in the future"),
    ({}, [("arrived", "2022-08-10T12:05:00+08:00")], "events", "exactly one reported"),
    (
        {},
        [
            {"type": "reported", "at": "2022-08-10T11:41:00+08:00"},
            {
                "type": "correction",
                "corrects": "nope",
                "at": "2022-08-10T11:41:00+08:00",
                "reason": "x",
            },
        ],
        "events[1].corrects",
        "no event 'nope'",
    ),
    ({"units": ["不存在的单位"]}, SEED, "units[0]", "unknown user unit"),
]


@pytest.mark.parametrize(("fields", "evs", "loc", "message"), REFUSALS)
def test_bad_input_is_refused_naming_the_field_and_nothing_is_written(
    session: Session,
    ctx: SlaContext,
    fields: dict[str, object],
    evs: list[object],
    loc: str,
    message: str,
) -> None:
    before = counts(session)
    with pytest.raises(InvalidInput) as exc:
        WriteFlow(session, ctx).create_ticket(make_ticket_in(evs, **fields), OPERATOR2)
    session.rollback()
    assert any(p.loc == loc and message in p.msg for p in exc.value.problems), exc.value.problems
    assert counts(session) == before


def test_a_duplicate_external_id_in_the_same_pool_is_refused(
    session: Session, ctx: SlaContext
) -> None:
    make_ticket(session, ctx, SEED)
    before = counts(session)
    with pytest.raises(InvalidInput) as exc:
        WriteFlow(session, ctx).create_ticket(make_ticket_in(SEED), OPERATOR2)
    session.rollback()
    assert exc.value.problems[0].loc == "external_id"
    assert counts(session) == before
    # The same number in the other pool is another operator's ticket.
    make_ticket(session, ctx, SEED, pool="pool1")


def test_an_operator_cannot_write_another_pool(session: Session, ctx: SlaContext) -> None:
    with pytest.raises(InvalidInput) as exc:
        WriteFlow(session, ctx).create_ticket(make_ticket_in(SEED, pool="pool1"), OPERATOR2)
    assert exc.value.problems[0].loc == "pool"


EVENT_REFUSALS = [
    ({"type": "arrived", "at": "2022-08-10T11:00:00+08:00"}, "at", "before the ticket's reported"),
    ({"type": "arrived", "at": "2026-11-28T14:06:00+08:00"}, "at", "in the future"),
    (
        {"type": "correction", "corrects": "99", "at": "2022-08-10T12:00:00+08:00", "reason": "x"},
        "corrects",
        "no event '99'",
    ),
    (
        {"type": "correction", "corrects": "1", "at": "2022-08-10T12:30:00+08:00", "reason": "x"},
        "at",
        "would put event",
    ),
    ({"type": "reported", "at": "2022-08-10T12:00:00+08:00"}, "type", "already reported"),
    (
        {"type": "severity_changed", "severity": "nope", "at": "2022-08-10T12:00:00+08:00"},
        "severity",
        "unknown severity",
    ),
]


@pytest.mark.parametrize(("fields", "loc", "message"), EVENT_REFUSALS)
def test_bad_events_are_refused_naming_the_field(
    session: Session, ctx: SlaContext, fields: dict[str, str], loc: str, message: str
) -> None:
    ticket = make_ticket(session, ctx, SEED)
    before = counts(session)
    with pytest.raises(InvalidInput) as exc:
        post_event(session, ctx, ticket, **fields)
    session.rollback()
    assert any(p.loc == loc and message in p.msg for p in exc.value.problems), exc.value.problems
    assert counts(session) == before


def test_future_tolerance_is_five_minutes(session: Session, ctx: SlaContext) -> None:
    # A server clock a little behind the operator's is tolerated; five minutes is the limit.
    at = NOW + timedelta(minutes=4, seconds=59)
    ticket = make_ticket(session, ctx, [("reported", at.isoformat())])
    assert ticket.reported_at == at
    with pytest.raises(InvalidInput) as exc:
        make_ticket(
            session,
            ctx,
            [("reported", (NOW + timedelta(minutes=5, seconds=1)).isoformat())],
            external_id="LATER",
        )
    session.rollback()
    assert (
        exc.value.problems[0].loc == "events[0].at" and "in the future" in exc.value.problems[0].msg
    )


def test_two_writers_creating_one_ticket_at_once_get_it_and_a_refusal_by_name(
    engine: Engine, settings: Settings, clock: FixedClock
) -> None:
    """Two replicas (or a retry under a new key) creating the same ticket at the same
    moment: the second waits for the first and is refused naming external_id, not with a
    database error (on PostgreSQL it failed on the unique index: a 500)."""
    body = TicketIn.model_validate(ticket_body())
    first_flow, second_flow = _two_flows(engine, settings, clock)
    first_flow.create_ticket(body, SYSTEM)  # its transaction stays open
    racing, outcome = _racing_create(second_flow, body)
    _commit_then_join(first_flow, racing)
    assert outcome == [["external_id"]]


def test_an_import_sized_write_locks_creation_whole_and_a_racing_writer_is_refused_by_name(
    engine: Engine, settings: Settings, clock: FixedClock
) -> None:
    """A transaction whose first tickets are more than a batch holds (an import's chunk of
    500): on PostgreSQL one lock on ticket creation, not one per external id (an import of
    20,000 tickets ran out of the server's lock table and failed), and a writer creating
    one of its tickets meanwhile still waits for it and is refused by name."""
    many = [TicketIn.model_validate(ticket_body(f"BULK-{i:04d}")) for i in range(150)]
    first_flow, second_flow = _two_flows(engine, settings, clock)
    first_flow.create_tickets(many, SYSTEM)
    if engine.dialect.name == "postgresql":
        held = first_flow.session.connection().exec_driver_sql(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
        )
        assert held.scalar_one() == 1
    racing, outcome = _racing_create(second_flow, many[120])
    assert outcome == []  # it waits for the import
    _commit_then_join(first_flow, racing)
    assert outcome == [["external_id"]]


def test_a_writer_past_a_batch_of_ids_does_not_deadlock_with_one_waiting_for_them(
    engine: Engine, settings: Settings, clock: FixedClock
) -> None:
    """A writer that has locked 50 ids, while another waits for one of them, goes on to
    create 100 more: it keeps locking ids (making its shared lock on creation exclusive
    would wait for the other, which waits for it: a deadlock), and the other is refused by
    name once it commits."""
    many = [TicketIn.model_validate(ticket_body(f"MORE-{i:04d}")) for i in range(150)]
    first_flow, second_flow = _two_flows(engine, settings, clock)
    first_flow.create_tickets(many[:50], SYSTEM)
    racing, outcome = _racing_create(second_flow, many[10])
    first_flow.create_tickets(many[50:], SYSTEM)
    _commit_then_join(first_flow, racing)
    assert outcome == [["external_id"]]


def _racing_create(flow: WriteFlow, body: TicketIn) -> tuple[threading.Thread, list[object]]:
    """Another writer creating `body` in a thread of its own, given half a second to reach
    the lock it waits on (or, without one, the insert); what it met goes into the list."""
    outcome: list[object] = []

    def write() -> None:
        try:
            flow.create_ticket(body, SYSTEM)
            flow.session.commit()
            outcome.append("written twice")
        except InvalidInput as exc:
            outcome.append([p.loc for p in exc.problems])
        except Exception as exc:  # what the tests are about: reported, not raised
            outcome.append(repr(exc))
        finally:
            flow.session.rollback()
            flow.session.close()

    racing = threading.Thread(target=write)
    racing.start()
    time.sleep(0.5)
    return racing, outcome


def _two_flows(
    engine: Engine, settings: Settings, clock: FixedClock
) -> tuple[WriteFlow, WriteFlow]:
    """Two writers, each on its own session, whose next write begins its own transaction."""
    flows = []
    for _ in range(2):
        session = Session(engine)
        flows.append(WriteFlow(session, load_context(session, settings, clock)))
        session.rollback()  # (the context's read ended, before the other's begins)
    return flows[0], flows[1]


def _commit_then_join(flow: WriteFlow, racing: threading.Thread) -> None:
    flow.finish()
    flow.session.commit()
    racing.join(30)
    flow.session.close()
