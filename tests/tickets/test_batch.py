"""POST /tickets/batch: many tickets in one request, each as POST /tickets makes it; all of
them or none, every problem named `tickets[i].field`."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from monitor.audit.models import AuditRecord
from monitor.audit.verify import verify
from monitor.breaches.models import Breach
from monitor.metrics.totals import reconcile
from monitor.tickets.schemas import MAX_TICKETS_PER_BATCH as MAX_TICKETS
from tests.helpers import counts, ticket_body

API = "/api/v1"


def batch(client: TestClient, auth: Any, who: str, body: Any, key: str | None = None) -> Any:
    headers = dict(auth[who])
    if key:
        headers["Idempotency-Key"] = key
    return client.post(f"{API}/tickets/batch", json=body, headers=headers)


# Without a key the answer is made once the write has committed, from what it kept; with
# one, before the commit, to be kept beside the write. Either is what a read then shows.
@pytest.mark.parametrize("key", ["b-1", None])
def test_each_ticket_of_a_batch_is_made_as_a_single_post_makes_it(
    client: TestClient, auth: Any, key: str | None
) -> None:
    open_one = ticket_body(
        "EX-B2",
        pool="政务二云",
        severity="重大故障",
        events=[{"type": "reported", "at": "2022-08-10T11:41:00+08:00"}],
    )
    tickets = [ticket_body("EX-B1"), open_one, ticket_body("EX-B3", title="第三个")]
    r = batch(client, auth, "op2", {"tickets": tickets}, key=key)
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["events"] == 7
    assert [t["external_id"] for t in made["tickets"]] == ["EX-B1", "EX-B2", "EX-B3"]
    first = made["tickets"][0]
    assert (first["pool"], first["severity"], first["status"]) == ("pool2", "major", "resolved")
    assert first["breached"] is True
    assert first["reported_at"] == "2022-08-10T11:41:00+08:00"
    assert first["targets"][0]["deadline"].endswith("+08:00")
    # The same ticket posted alone is judged the same, event for event.
    alone = client.post(f"{API}/tickets", json=ticket_body("EX-ALONE"), headers=auth["op2"])
    assert alone.status_code == 201, alone.text
    by_batch = client.get(f"{API}/tickets/{first['id']}", headers=auth["op2"]).json()

    def judged(ticket: dict[str, Any]) -> Any:
        events = [(e["type"], e["at"], e["actor"], e["source"]) for e in ticket["events"]]
        return events, ticket["targets"], ticket["status"]

    assert judged(by_batch) == judged(alone.json())
    # A list shows the batch's tickets as the batch answered them.
    for shown in made["tickets"]:
        q = {"q": shown["external_id"]}
        assert client.get(f"{API}/tickets", params=q, headers=auth["op2"]).json()["items"] == [
            shown
        ]
    assert [t["status"] for t in made["tickets"][1]["targets"]][:1] == ["breached"]
    if key is None:
        return
    # A retry with the same key answers the same and writes nothing again.
    again = batch(client, auth, "op2", {"tickets": tickets}, key=key)
    assert again.status_code == 201 and again.json() == made
    assert again.headers.get("Idempotent-Replayed") == "true"


def test_one_bad_ticket_refuses_the_batch_naming_every_problem(
    client: TestClient, auth: Any, session: Session
) -> None:
    before = counts(session)
    bad_type = ticket_body(
        "EX-3",
        pool="pool9",
        events=[
            {"type": "reported", "at": "2022-08-10T11:41:00+08:00"},
            {"type": "exploded", "at": "2022-08-10T12:00:00+08:00"},
            {"type": "arrived", "at": "2099-01-01T00:00:00+08:00"},
        ],
    )
    good_by_name = ticket_body("EX-2", pool="政务二云", severity="重大故障")
    tickets = [ticket_body("EX-1"), ticket_body("EX-1"), bad_type, good_by_name]
    r = batch(client, auth, "admin", {"tickets": tickets})
    assert r.status_code == 422, r.text
    locs = [d["loc"] for d in r.json()["detail"]]
    typo = next(d["msg"] for d in r.json()["detail"] if d["loc"] == "tickets[2].events[1].type")
    assert typo.startswith("'exploded' is not known: ") and "'reported'" in typo
    assert {
        "tickets[1].external_id",
        "tickets[2].events[1].type",
        "tickets[2].pool",
        "tickets[2].events[2].at",
    } == set(locs), r.json()
    session.expire_all()
    assert counts(session) == before
    # A body FastAPI accepts whose tickets the write refuses: named the same way.
    valid_shape = [ticket_body("EX-1"), ticket_body("EX-1"), ticket_body("P1-1", pool="pool1")]
    r = batch(client, auth, "op2", {"tickets": valid_shape})
    assert r.status_code == 422, r.text
    assert [d["loc"] for d in r.json()["detail"]] == ["tickets[1].external_id", "tickets[2].pool"]
    session.expire_all()
    assert counts(session) == before


def test_a_batch_of_the_most_tickets_is_written_whole(client: TestClient, auth: Any) -> None:
    tickets = [ticket_body(f"EX-{i}") for i in range(MAX_TICKETS)]
    r = batch(client, auth, "op2", {"tickets": tickets})
    assert r.status_code == 201, r.text
    assert [t["external_id"] for t in r.json()["tickets"]] == [
        f"EX-{i}" for i in range(MAX_TICKETS)
    ]
    listed = client.get(f"{API}/tickets", params={"per_page": 500}, headers=auth["op2"]).json()
    assert listed["total"] == MAX_TICKETS


def test_a_batchs_breaches_each_have_the_audit_record_that_names_them(
    client: TestClient, auth: Any, session: Session
) -> None:
    # Thirty tickets late on every target: 90 breaches, inserted together at the batch's end
    # (more than 20: on PostgreSQL by COPY with their ids drawn first); each breach's record
    # follows its own ticket's in the chain, naming that breach and that ticket.
    tickets = [ticket_body(f"EX-{i}") for i in range(30)]
    r = batch(client, auth, "op2", {"tickets": tickets})
    assert r.status_code == 201, r.text
    breaches = session.exec(select(Breach).order_by(col(Breach.id))).all()
    assert len(breaches) == 90
    records = session.exec(select(AuditRecord).order_by(col(AuditRecord.seq))).all()
    detected = [a for a in records if a.action == "breach.detected"]
    assert [(a.entity_id, a.payload["ticket"], a.payload["target"]) for a in detected] == [
        (str(b.id), b.ticket_id, b.target) for b in breaches
    ]
    last_of_ticket: dict[int, int] = {}
    for a in records:
        if a.entity == "ticket":
            last_of_ticket[int(a.entity_id)] = a.seq
    for a in detected:  # after its ticket's own records, before the next ticket's
        ticket = a.payload["ticket"]
        assert all((seq < a.seq) == (t <= ticket) for t, seq in last_of_ticket.items())
    assert verify(session).ok
    assert reconcile(session) == 0


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"tickets": []}, "tickets"),
        ({"tickets": [ticket_body(f"EX-{i}") for i in range(1 + MAX_TICKETS)]}, "tickets"),
        ({"tickets": [ticket_body()], "extra": 1}, "extra"),
        ([ticket_body()], ""),
        ({"tickets": ["not a ticket"]}, "tickets[0]"),
    ],
    ids=["empty", "too-many", "unknown-field", "not-an-object", "not-a-ticket"],
)
def test_a_batch_out_of_bounds_is_refused_by_name(
    client: TestClient, auth: Any, session: Session, body: Any, loc: str
) -> None:
    before = counts(session)
    r = batch(client, auth, "op2", body)
    assert r.status_code == 422, r.text
    assert any(d["loc"] == loc for d in r.json()["detail"]), r.json()
    session.expire_all()
    assert counts(session) == before
