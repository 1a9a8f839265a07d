"""`POST /tickets` requests that wait at the same moment are written together
(`api/coalesce.py`): each still gets its own answer, as it would alone."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from monitor.api.app import create_app
from monitor.audit.verify import verify
from monitor.core.clock import FixedClock
from monitor.core.db import make_engine, session_scope
from monitor.core.settings import Settings
from monitor.tickets import router
from tests.api.test_limits import operator_headers
from tests.helpers import ticket_body, while_an_import_runs

API = "/api/v1"


class Gate:
    """Holds the first group's write until `waiting` more requests queue behind it, and
    records the size of every group written."""

    def __init__(self, client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
        self.coalescer = client.app.state.monitor.coalescer  # type: ignore[attr-defined]
        self.sizes: list[int] = []
        self.titles: list[list[str]] = []
        self.armed = False
        self.entered, self.release = threading.Event(), threading.Event()
        # Called with each group's size as it is written (its write in `current`): an error
        # it returns is raised in the write.
        self.fail: Callable[[int], BaseException | None] = lambda size: None
        self.current: Any = None
        write = router._create_and_show

        def gated(w: Any, bodies: list[Any]) -> Any:
            if not self.armed:
                return write(w, bodies)
            self.current = w
            self.sizes.append(len(bodies))
            self.titles.append([b.title for b in bodies])
            if len(self.sizes) == 1:
                self.entered.set()
                assert self.release.wait(20)
            error = self.fail(len(bodies))
            if error is not None:
                raise error
            return write(w, bodies)

        monkeypatch.setattr(router, "_create_and_show", gated)

    def hold_then(self, first: Callable[[], None], then: list[Callable[[], None]]) -> None:
        """`first` written alone and held; `then` sent meanwhile; all released once queued."""
        self.armed = True
        threads = [threading.Thread(target=first, daemon=True)]
        threads[0].start()
        assert self.entered.wait(20)
        threads += [threading.Thread(target=call, daemon=True) for call in then]
        for t in threads[1:]:
            t.start()
        deadline = time.monotonic() + 20
        while len(self.coalescer._waiting) < len(then) and time.monotonic() < deadline:
            time.sleep(0.01)
        queued = len(self.coalescer._waiting)
        self.release.set()
        assert queued == len(then)
        for t in threads:
            t.join(30)
            assert not t.is_alive(), "a request did not come back"


@pytest.fixture
def gate(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    yield Gate(client, monkeypatch)


def poster(
    client: TestClient, headers: dict[str, str], body: dict[str, Any], answers: dict[str, Any]
) -> Callable[[], None]:
    def send() -> None:
        answers[body["title"]] = client.post(f"{API}/tickets", json=body, headers=headers)

    return send


def tickets_titled(engine: Engine) -> dict[str, tuple[str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT title, pool, external_id FROM tickets")).all()
    return {title: (pool, external_id) for title, pool, external_id in rows}


def test_tickets_posted_at_once_are_written_together_and_each_gets_its_own_answer(
    client: TestClient, auth: Any, engine: Engine, gate: Gate
) -> None:
    answers: dict[str, Any] = {}
    body = {
        "first": ticket_body("C-0", title="first"),
        "b1": ticket_body("C-1", title="b1"),
        "b2": ticket_body("C-2", title="b2", severity="general"),
        "again": ticket_body("C-1", title="again"),
    }
    gate.hold_then(
        poster(client, auth["op2"], body["first"], answers),
        [poster(client, auth["op2"], body[k], answers) for k in body if k != "first"],
    )
    # The first alone; then two as one group, and the second ticket of external id C-1 after
    # them, refused by name as it would be alone.
    assert sorted(gate.sizes) == [1, 1, 2], gate.titles
    statuses = {k: a.status_code for k, a in answers.items()}
    refused = "again" if statuses["again"] == 422 else "b1"
    written = [k for k in body if k != refused]
    assert statuses == {k: 201 if k in written else 422 for k in body}
    problem = answers[refused].json()["detail"]
    assert [p["loc"] for p in problem] == ["external_id"]
    assert "pool2 already has a ticket with external_id 'C-1'" in problem[0]["msg"]
    for k in written:  # its own ticket, as its body gave it, judged
        out = answers[k].json()
        assert (out["title"], out["pool"], out["external_id"]) == (
            k,
            body[k]["pool"],
            body[k]["external_id"],
        )
        assert answers[k].headers["Location"] == f"/api/v1/tickets/{out['id']}"
        assert [e["type"] for e in out["events"]] == ["reported", "arrived", "resolved"]
        assert [e["seq"] for e in out["events"]] == [1, 2, 3]
        assert out["targets"] and all(t["status"] for t in out["targets"])
        shown = client.get(f"{API}/tickets/{out['id']}", headers=auth["admin"]).json()
        assert shown["events"] == out["events"] and shown["targets"] == out["targets"]
    assert len({answers[k].json()["id"] for k in written}) == len(written)
    assert set(tickets_titled(engine)) == set(written)
    assert answers["b2"].json()["severity"] == "general"
    with session_scope(engine) as session:
        assert verify(session).ok  # the audit chain, and every row it vouches for


def test_a_refused_ticket_does_not_keep_the_others_of_its_group_out(
    client: TestClient, auth: Any, engine: Engine, gate: Gate
) -> None:
    assert client.post(f"{API}/tickets", json=ticket_body("OLD-1"), headers=auth["op2"]).is_success
    answers: dict[str, Any] = {}
    sent = [
        ticket_body("R-1", title="ok1"),
        ticket_body("OLD-1", title="taken"),
        ticket_body("R-2", title="ok2"),
    ]
    gate.hold_then(
        poster(client, auth["op2"], ticket_body("R-0", title="first"), answers),
        [poster(client, auth["op2"], b, answers) for b in sent],
    )
    assert gate.sizes == [1, 3, 2]  # the group checked; written again without the refused one
    assert {k: a.status_code for k, a in answers.items()} == {
        "first": 201,
        "ok1": 201,
        "taken": 422,
        "ok2": 201,
    }
    assert answers["taken"].json()["detail"][0]["loc"] == "external_id"
    assert set(tickets_titled(engine)) == {"重要业务系统异常", "first", "ok1", "ok2"}


@pytest.mark.parametrize("where", ["write", "commit"])
def test_a_group_the_database_fails_fails_each_of_its_requests_and_writes_none(
    client: TestClient, auth: Any, engine: Engine, gate: Gate, where: str
) -> None:
    """The database fails a group of two as a busy database does, while its rows go in or
    at its commit (the rows written by then): none of its tickets stays, each request is
    answered as that failure answers alone (503), none 201, and the process writes on."""
    lost = sa.exc.OperationalError(where.upper(), {}, Exception("database is locked"))

    def fail(size: int) -> BaseException | None:
        if size != 2:
            return None
        if where == "write":
            return lost

        def refuse(_: Any) -> None:
            raise lost

        sa.event.listen(gate.current.session, "before_commit", refuse, once=True)
        return None

    gate.fail = fail
    answers: dict[str, Any] = {}
    gate.hold_then(
        poster(client, auth["op2"], ticket_body("F-0", title="first"), answers),
        [
            poster(client, auth["op2"], ticket_body(f"F-{i}", title=f"t{i}"), answers)
            for i in (1, 2)
        ],
    )
    assert gate.sizes == [1, 2]
    assert {k: a.status_code for k, a in answers.items()} == {"first": 201, "t1": 503, "t2": 503}
    assert set(tickets_titled(engine)) == {"first"}
    after = client.post(f"{API}/tickets", json=ticket_body("F-1"), headers=auth["op2"])
    assert after.status_code == 201, after.text  # its external id is free: nothing stayed
    with session_scope(engine) as session:
        assert verify(session).ok


def test_tickets_waiting_behind_an_import_are_refused_in_time_and_never_written_after(
    db_url: str, settings: Settings, clock: FixedClock
) -> None:
    """Four POSTs sent at once while an import holds the creation of tickets: each answers
    503 within about the busy time (the first's group waits once for the lock; the others
    for their turn, each at most its own busy time, not one after another) and none of
    their tickets is written once the import has gone."""
    engine = make_engine(db_url, busy_seconds=1.0)
    app = create_app(settings, clock=clock, engine=engine)
    with TestClient(app) as client:
        headers = operator_headers(engine, clock)
        answers: dict[int, tuple[int, float]] = {}

        def send(i: int) -> None:
            began = time.monotonic()
            r = client.post(f"{API}/tickets", json=ticket_body(f"B-{i}"), headers=headers)
            answers[i] = (r.status_code, time.monotonic() - began)

        def four_at_once() -> None:
            threads = [threading.Thread(target=send, args=(i,), daemon=True) for i in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(20)
                assert not t.is_alive(), "a request did not come back"

        while_an_import_runs(db_url, four_at_once)
        assert sorted(answers) == [0, 1, 2, 3]
        assert {status for status, _ in answers.values()} == {503}
        # one after another, the fourth would have answered after 4 s
        assert max(took for _, took in answers.values()) < 3.5, answers
        after = client.post(f"{API}/tickets", json=ticket_body("B-9"), headers=headers)
        assert after.status_code == 201, after.text
        listed = client.get(f"{API}/tickets", headers=headers).json()
        assert [t["external_id"] for t in listed["items"]] == ["B-9"]
        assert app.state.monitor.coalescer._waiting == []
    engine.dispose()


def test_another_tokens_ticket_does_not_wait_for_a_group_being_written(
    client: TestClient, auth: Any, engine: Engine, gate: Gate
) -> None:
    """Only one token's tickets share a write: while op2's is being written (held here),
    op1's ticket is written alongside on PostgreSQL, as before; on SQLite it waits for the
    write lock, as every writer does. Either way it is written, and neither is refused."""
    answers: dict[str, Any] = {}
    gate.armed = True
    held = threading.Thread(
        target=poster(client, auth["op2"], ticket_body("H-0", title="held"), answers),
        daemon=True,
    )
    held.start()
    assert gate.entered.wait(20)
    other = threading.Thread(
        target=poster(client, auth["op1"], ticket_body("H-1", "pool1", title="other"), answers),
        daemon=True,
    )
    other.start()
    other.join(3 if engine.dialect.name == "postgresql" else 0.5)
    answered_while_held = "other" in answers
    gate.release.set()
    for t in (held, other):
        t.join(30)
        assert not t.is_alive(), "a request did not come back"
    assert answered_while_held == (engine.dialect.name == "postgresql")
    assert {k: a.status_code for k, a in answers.items()} == {"held": 201, "other": 201}
    assert set(tickets_titled(engine)) == {"held", "other"}


def test_a_group_takes_at_most_a_batchs_tickets(
    client: TestClient, auth: Any, engine: Engine, gate: Gate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """However many wait, a group holds at most as many tickets as POST /tickets/batch takes
    (here made 2); the rest are written by the next group, each answered 201."""
    monkeypatch.setattr("monitor.api.coalesce.MAX_TICKETS_PER_BATCH", 2)
    answers: dict[str, Any] = {}
    gate.hold_then(
        poster(client, auth["op2"], ticket_body("M-0", title="first"), answers),
        [
            poster(client, auth["op2"], ticket_body(f"M-{i}", title=f"t{i}"), answers)
            for i in (1, 2, 3, 4, 5)
        ],
    )
    assert gate.sizes == [1, 2, 2, 1]
    assert {a.status_code for a in answers.values()} == {201}
    assert set(tickets_titled(engine)) == {"first", "t1", "t2", "t3", "t4", "t5"}
