"""An Idempotency-Key belongs to the token that sent it, and is held with the write."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from monitor.auth.service import create_token
from monitor.core.clock import FixedClock
from monitor.core.db import session_scope
from tests.helpers import ticket_body

API = "/api/v1"


def token(engine: Engine, clock: FixedClock, name: str, pool: str) -> dict[str, str]:
    with session_scope(engine) as session:
        _, value = create_token(
            session,
            name=name,
            role="operator",
            pool=pool,
            known_pools=["pool1", "pool2"],
            now=clock.now(),
        )
    return {"Authorization": f"Bearer {value}"}


def test_another_tokens_key_is_a_new_request_not_a_replay(
    client: TestClient, engine: Engine, clock: FixedClock
) -> None:
    # Two operators' tokens carry the same name; only the token decides whose key it is.
    pool2 = token(engine, clock, "ops", "pool2")
    pool1 = token(engine, clock, "ops", "pool1")
    body = ticket_body("P2-SECRET")
    first = client.post(f"{API}/tickets", json=body, headers={**pool2, "Idempotency-Key": "k"})
    assert first.status_code == 201
    probe = client.post(f"{API}/tickets", json=body, headers={**pool1, "Idempotency-Key": "k"})
    assert probe.status_code == 422 and "Idempotent-Replayed" not in probe.headers
    # Refused for its pool, without a word about what pool2 holds.
    assert [p["loc"] for p in probe.json()["detail"]] == ["pool"]
    assert "already" not in probe.text


def test_a_retry_after_a_refusal_is_refused_the_same_way_and_a_fixed_body_is_new(
    client: TestClient, engine: Engine, clock: FixedClock
) -> None:
    ops = token(engine, clock, "ops", "pool2")
    headers = {**ops, "Idempotency-Key": "k-bad"}
    bad = client.post(f"{API}/tickets", json=ticket_body(severity="gigantic"), headers=headers)
    again = client.post(f"{API}/tickets", json=ticket_body(severity="gigantic"), headers=headers)
    assert bad.status_code == again.status_code == 422 and bad.json() == again.json()
    fixed = client.post(f"{API}/tickets", json=ticket_body(), headers=headers)
    assert fixed.status_code == 422 and "different request" in fixed.text


def test_a_slow_first_request_cannot_be_overtaken_by_its_retry(
    client: TestClient, engine: Engine, clock: FixedClock
) -> None:
    """The first request waits on a lock someone else holds; its retry arrives meanwhile.
    Both answer the same, and the event is stored once (no timeout hands the key over)."""
    import threading

    import sqlalchemy as sa

    from monitor.core.db import make_engine

    ops = token(engine, clock, "ops", "pool2")
    ticket = client.post(f"{API}/tickets", json=ticket_body(), headers=ops).json()
    headers = {**ops, "Idempotency-Key": "slow"}
    event = {"type": "comment", "at": "2022-08-10T13:00:00+08:00", "note": "到场检查"}
    answers: list[tuple[int, str]] = []

    def send() -> None:
        r = client.post(f"{API}/tickets/{ticket['id']}/events", json=event, headers=headers)
        answers.append((r.status_code, r.text))

    blocker = make_engine(engine.url.render_as_string(hide_password=False))
    with blocker.begin() as conn:  # another writer holds the ticket (or, on SQLite, the file)
        lock = "" if conn.dialect.name == "sqlite" else " FOR UPDATE"  # SQLite: BEGIN IMMEDIATE
        conn.execute(sa.text(f"SELECT id FROM tickets WHERE id = {ticket['id']}{lock}"))
        first = threading.Thread(target=send)
        first.start()
        retry = threading.Thread(target=send)
        retry.start()
        first.join(0.5)
        assert first.is_alive() and retry.is_alive()  # both wait; neither wrote
    first.join(30)
    retry.join(30)
    assert [code for code, _ in answers] == [201, 201] and answers[0][1] == answers[1][1]
    events = client.get(f"{API}/tickets/{ticket['id']}", headers=ops).json()["events"]
    assert [e["note"] for e in events].count("到场检查") == 1
