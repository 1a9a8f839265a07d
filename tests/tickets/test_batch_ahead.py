"""A batch of new tickets judged before its write takes SQLite's write lock (while another
server process writes): each process's batches get ids of their own, a batch whose ids or
context changed meanwhile is judged again under the lock, and a refused batch spends no
ticket ids. On PostgreSQL the batch is judged in its transaction, as before; what a user sees
is the same on both."""

from __future__ import annotations

import fcntl
import os
import threading
from datetime import date, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

import monitor.core.db as db
from monitor.api.app import create_app
from monitor.audit.verify import verify
from monitor.calendars.calendar import YearArrangement, build_calendar, package_arrangements
from monitor.core.clock import FixedClock
from monitor.core.db import make_engine, release_ids, reserve_ids, session_scope
from monitor.core.settings import Settings
from monitor.core.timeutil import utc
from monitor.judging.flow import write_flow
from monitor.judging.new_tickets import TICKETS
from monitor.metrics.totals import reconcile
from monitor.sla.models import TargetState
from monitor.sla.service import ContextCache
from monitor.tickets.importer import create_parsed, make_ahead, ticket_rows
from monitor.tickets.models import Ticket
from monitor.tickets.schemas import TicketIn
from tests.helpers import OPERATOR2, corrected_body, ticket_body

API = "/api/v1"


def _batch(prefix: str, count: int) -> list[dict[str, Any]]:
    return [ticket_body(f"{prefix}-{i}") for i in range(count)]


def _post(client: TestClient, auth: Any, tickets: list[dict[str, Any]]) -> Any:
    return client.post(f"{API}/tickets/batch", json={"tickets": tickets}, headers=auth["op2"])


def _ids(engine: Engine) -> list[int]:
    with Session(engine) as session:
        return sorted(t for t in session.exec(select(Ticket.id)) if t is not None)


def test_batches_from_two_server_processes_at_once_are_all_stored_once(
    app: Any, client: TestClient, auth: Any, settings: Settings, clock: FixedClock, db_url: str
) -> None:
    # A second server process on the same database: its own engine, write queue, file locks.
    other_engine = make_engine(db_url)
    other = TestClient(create_app(settings, clock=clock, engine=other_engine))
    clients = [client, other, client, other]
    barrier = threading.Barrier(len(clients))
    answers: list[Any] = []

    def post(k: int) -> None:
        barrier.wait()
        for i in range(4):
            body = {"tickets": _batch(f"P{k}-{i}", 10)}
            answers.append(clients[k].post(f"{API}/tickets/batch", json=body, headers=auth["op2"]))

    with other:
        threads = [threading.Thread(target=post, args=(k,)) for k in range(len(clients))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    other_engine.dispose()
    assert [a.status_code for a in answers] == [201] * 16, [a.text for a in answers]
    answered = sorted(t["id"] for a in answers for t in a.json()["tickets"])
    # Every ticket once, with the id it was answered with, and no id skipped.
    assert answered == _ids(app.state.monitor.engine) == list(range(1, 161))
    engine = app.state.monitor.engine
    with Session(engine) as session:
        assert verify(session).ok
        assert reconcile(session) == 0
        states = session.exec(select(col(TargetState.ticket_id)).distinct()).all()
        assert sorted(states) == answered


def test_a_refused_batch_spends_no_ticket_ids(
    app: Any, client: TestClient, auth: Any, engine: Engine
) -> None:
    made = client.post(
        f"{API}/tickets/batch", json={"tickets": _batch("R", 3)}, headers=auth["op2"]
    )
    assert made.status_code == 201, made.text
    bad = _batch("S", 3)
    bad[1]["severity"] = "不存在的等级"
    refused = _post(client, auth, bad)
    assert refused.status_code == 422 and "tickets[1].severity" in refused.text
    # An external id already stored is found only once the batch is judged, under the lock.
    taken = _batch("T", 3)
    taken[2]["external_id"] = "R-0"
    refused = _post(client, auth, taken)
    assert refused.status_code == 422, refused.text
    assert "tickets[2].external_id" in refused.text
    after = client.post(
        f"{API}/tickets/batch", json={"tickets": _batch("U", 2)}, headers=auth["op2"]
    )
    assert after.status_code == 201, after.text
    if engine.dialect.name == "sqlite":  # (PostgreSQL's sequence keeps what it handed out)
        assert [t["id"] for t in after.json()["tickets"]] == [4, 5]
    assert _ids(engine)[-2:] == [t["id"] for t in after.json()["tickets"]]
    # Nothing of the refused batches was written.
    with Session(engine) as session:
        external = session.exec(select(Ticket.external_id)).all()
    assert sorted(external) == ["R-0", "R-1", "R-2", "U-0", "U-1"]


def _made_ahead(engine: Engine, settings: Settings, clock: FixedClock, bodies: list[Any]) -> Any:
    contexts = ContextCache(settings, clock)
    with session_scope(engine) as session:
        ctx = contexts.get(session)  # the context a server keeps
    parsed = list(
        zip(ticket_rows(bodies), [TicketIn.model_validate(b) for b in bodies], strict=True)
    )
    return contexts, parsed, make_ahead(engine, ctx, parsed, OPERATOR2)


def test_a_batch_whose_ids_were_taken_while_it_was_judged_gets_others(
    engine: Engine, settings: Settings, clock: FixedClock
) -> None:
    contexts, parsed, ahead = _made_ahead(engine, settings, clock, _batch("A", 3))
    if engine.dialect.name == "postgresql":
        assert ahead is None  # (judged in its transaction: no one waits for a lock)
        return
    assert ahead.ids == [1, 2, 3]
    # Meanwhile a writer that knows nothing of the range (an import, a single POST) takes
    # its first id.
    with session_scope(engine) as session, write_flow(session, contexts.get(session)) as flow:
        flow.create_tickets([TicketIn.model_validate(ticket_body("B-0"))], OPERATOR2)
    with session_scope(engine) as session:
        ctx = contexts.get(session)
        with write_flow(session, ctx) as flow:
            done = create_parsed(flow, parsed, [], OPERATOR2, ahead)
    ahead.release()
    assert [t.id for t in done.created] == [2, 3, 4]
    with Session(engine) as session:
        stored = {t.id: t.external_id for t in session.exec(select(Ticket))}
        assert stored == {1: "B-0", 2: "A-0", 3: "A-1", 4: "A-2"}
        assert verify(session).ok
        assert reconcile(session) == 0


def _write(engine: Engine, contexts: ContextCache, parsed: Any, ahead: Any, ctx: Any = None) -> Any:
    with session_scope(engine) as session, write_flow(session, ctx or contexts.get(session)) as w:
        done = create_parsed(w, parsed, [], OPERATOR2, ahead)
    ahead.release()
    return [t.id for t in done.created]


def _two_made_ahead(engine: Engine, settings: Settings, clock: FixedClock, a: str, b: str) -> Any:
    """Two batches of 3 made ahead at once (two server processes), or None on PostgreSQL."""
    contexts, first, ahead1 = _made_ahead(engine, settings, clock, _batch(a, 3))
    _, second, ahead2 = _made_ahead(engine, settings, clock, _batch(b, 3))
    if engine.dialect.name == "postgresql":
        assert ahead1 is None and ahead2 is None  # (judged in its transaction)
        return None
    assert (ahead1.ids, ahead2.ids) == ([1, 2, 3], [4, 5, 6])
    return contexts, (first, ahead1), (second, ahead2)


def test_a_batch_judged_again_keeps_the_ids_handed_out_for_it(
    engine: Engine, settings: Settings, clock: FixedClock
) -> None:
    # The later-numbered batch is written first and judged again (its context was a read's,
    # before its process had written): it keeps its own ids, and the other's stay free.
    if (made := _two_made_ahead(engine, settings, clock, "F", "G")) is None:
        return
    contexts, first, second = made
    with session_scope(engine) as session:
        other = ContextCache(settings, clock).get(session)  # not the one it was judged in
    assert _write(engine, contexts, *second, other) == [4, 5, 6]
    assert _write(engine, contexts, *first) == [1, 2, 3]
    with Session(engine) as session:
        assert verify(session).ok
        assert reconcile(session) == 0


def test_a_batch_whose_ids_were_taken_takes_none_of_another_batchs(
    engine: Engine, settings: Settings, clock: FixedClock
) -> None:
    if (made := _two_made_ahead(engine, settings, clock, "H", "I")) is None:
        return
    contexts, first, second = made
    # A single POST takes the first batch's first id: that batch gets a range past the other
    # batch's, which is then written with its own ids, as it was judged.
    with session_scope(engine) as session, write_flow(session, contexts.get(session)) as flow:
        flow.create_tickets([TicketIn.model_validate(ticket_body("J-0"))], OPERATOR2)
    assert _write(engine, contexts, *first) == [7, 8, 9]
    assert _write(engine, contexts, *second) == [4, 5, 6]
    with Session(engine) as session:
        stored = {t.id: t.external_id for t in session.exec(select(Ticket))}
    assert stored == {1: "J-0", 4: "I-0", 5: "I-1", 6: "I-2", 7: "H-0", 8: "H-1", 9: "H-2"}


def test_a_batch_judged_before_a_calendar_was_loaded_is_judged_again(
    engine: Engine, settings: Settings, clock: FixedClock
) -> None:
    events = [  # resolved: its report is due some working days later
        {"type": "reported", "at": "2022-08-10T11:41:00+08:00"},
        {"type": "arrived", "at": "2022-08-10T12:00:00+08:00"},
        {"type": "resolved", "at": "2022-08-10T13:00:00+08:00"},
    ]
    body = ticket_body("C-0", events=events)
    contexts, parsed, ahead = _made_ahead(engine, settings, clock, [body])
    if engine.dialect.name == "postgresql":
        assert ahead is None
        return
    judged_before = {s["target"]: s["deadline"] for s in ahead.done.prepared.state_rows()}
    with session_scope(engine) as session:
        ctx = contexts.get(session)
        # An admin loads an arrangement meanwhile (the server's context then holds a new
        # calendar): the rest of August 2022 made holidays moves working-day deadlines.
        ctx.calendar = _with_holidays(date(2022, 8, 11), date(2022, 8, 31))
        with write_flow(session, ctx) as flow:
            done = create_parsed(flow, parsed, [], OPERATOR2, ahead)
        # The same ticket written with no batch made ahead, for comparison.
        other = ticket_body("C-1", events=events)
        alone = list(zip(ticket_rows([other]), [TicketIn.model_validate(other)], strict=True))
        with write_flow(session, ctx) as flow:
            plain = create_parsed(flow, alone, [], OPERATOR2)
    ahead.release()

    def stored(ticket_id: Any) -> dict[str, Any]:
        with Session(engine) as session:
            rows = session.exec(select(TargetState).where(TargetState.ticket_id == ticket_id))
            return {s.target: s.deadline for s in rows}

    now = stored(done.created[0].id)
    assert now == stored(plain.created[0].id)
    assert any(now[t] != (judged_before[t] and utc(judged_before[t])) for t in now), now


def test_a_batch_made_before_the_lock_reads_as_one_made_under_it(
    client: TestClient, auth: Any, engine: Engine, settings: Settings, clock: FixedClock
) -> None:
    # Its rows are bound for the database before the lock (on SQLite): the tickets, their
    # events with the corrections naming the events they correct, targets and breaches read
    # back as those of the same tickets written with nothing made ahead.
    bodies = [corrected_body("M-0"), ticket_body("M-1"), corrected_body("M-2")]
    contexts, parsed, ahead = _made_ahead(engine, settings, clock, bodies)
    others = [corrected_body("N-0"), ticket_body("N-1"), corrected_body("N-2")]
    alone = list(
        zip(ticket_rows(others), [TicketIn.model_validate(b) for b in others], strict=True)
    )
    with session_scope(engine) as session:
        with write_flow(session, contexts.get(session)) as flow:
            made = create_parsed(flow, parsed, [], OPERATOR2, ahead)
        with write_flow(session, contexts.get(session)) as flow:
            plain = create_parsed(flow, alone, [], OPERATOR2)
    if ahead is not None:
        ahead.release()

    def shown(ticket_id: int) -> dict[str, Any]:
        page = client.get(f"{API}/tickets/{ticket_id}", headers=auth["supervisor"])
        assert page.status_code == 200, page.text
        data = page.json()
        for key in ("id", "external_id"):
            data.pop(key)
        return data

    assert [t.external_id for t in made.created] == ["M-0", "M-1", "M-2"]
    first, late = shown(made.created[0].id or 0), shown(made.created[1].id or 0)
    assert len([e for e in first["events"] if e["type"] == "correction"]) == 2, first
    assert any(t["status"] == "breached" for t in late["targets"]), late["targets"]
    for a, b in zip(made.created, plain.created, strict=True):
        assert shown(a.id or 0) == shown(b.id or 0)
    with Session(engine) as session:
        assert verify(session).ok
        assert reconcile(session) == 0


def _with_holidays(first: date, last: date) -> Any:
    package = package_arrangements()
    year = {a.year: a for a in package}[first.year]
    days = (first + timedelta(days=i) for i in range((last - first).days + 1))
    extra = {d: "测试假日" for d in days if d.weekday() < 5}
    loaded = YearArrangement(year.year, "测试", {**year.holidays, **extra}, year.workdays)
    return build_calendar(package, [loaded])


def test_ranges_handed_out_on_one_file_are_apart_and_given_back(db_url: str) -> None:
    first, second = make_engine(db_url), make_engine(db_url)  # as two server processes
    try:
        a = reserve_ids(first, TICKETS, 5)
        b = reserve_ids(second, TICKETS, 5)
        if first.dialect.name == "postgresql":
            assert a is None and b is None
            return
        assert a == [1, 2, 3, 4, 5] and b == [6, 7, 8, 9, 10]
        release_ids(second, TICKETS, b)
        assert reserve_ids(first, TICKETS, 2) == [6, 7]  # (b's ids, given back, again)
        release_ids(first, TICKETS, a)
        release_ids(first, TICKETS, [6, 7])
        assert reserve_ids(second, TICKETS, 1) == [1]  # nothing stored, nothing in use
    finally:
        first.dispose()
        second.dispose()


def test_a_range_its_process_never_gave_back_is_forgotten(db_url: str, monkeypatch: Any) -> None:
    engine = make_engine(db_url)
    try:
        if engine.dialect.name == "postgresql":
            assert reserve_ids(engine, TICKETS, 3) is None
            return
        assert reserve_ids(engine, TICKETS, 3) == [1, 2, 3]  # (its process then dies)
        assert reserve_ids(engine, TICKETS, 1) == [4]
        monkeypatch.setattr(db, "RESERVED_SECONDS", 0.0)  # (as if a minute had passed)
        assert reserve_ids(engine, TICKETS, 1) == [1]
    finally:
        engine.dispose()


def test_the_largest_id_is_read_while_the_ranges_are_held(db_url: str) -> None:
    # A range is given back once its rows are committed: a read of the largest id made
    # before another process gave its range back, and the range then taken, could fall on
    # those rows. The read happens under the file's lock, which no other process can take.
    engine = make_engine(db_url)
    try:
        if engine.dialect.name == "postgresql":
            assert reserve_ids(engine, TICKETS, 1) is None
            return
        path = db_url.removeprefix("sqlite:///") + "-ids"
        ranges = db._Ranges(path)
        held: list[bool] = []

        def largest() -> int:
            fd = os.open(path, os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held.append(False)
            except BlockingIOError:
                held.append(True)
            finally:
                os.close(fd)
            return 41

        assert ranges.take("tickets", largest, 3) == 42
        assert held == [True]
    finally:
        engine.dispose()
