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
