"""The ticket API: the import format over HTTP, errors that name the field, nothing written."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session

from monitor.tickets import search
from tests.helpers import corrected_body, counts, ticket_body

API = "/api/v1"


def post(
    client: TestClient,
    auth: dict[str, dict[str, str]],
    who: str,
    body: Any,
    key: str | None = None,
    path: str = "/tickets",
) -> Any:
    headers = dict(auth[who])
    if key:
        headers["Idempotency-Key"] = key
    return client.post(API + path, json=body, headers=headers)


def test_a_posted_ticket_looks_like_an_imported_one(client: TestClient, auth: Any) -> None:
    r = post(client, auth, "op2", ticket_body())
    assert r.status_code == 201, r.text
    data = r.json()
    assert r.headers["Location"] == f"{API}/tickets/{data['id']}"
    assert (data["pool"], data["severity"], data["external_id"]) == ("pool2", "major", "EX-0001")
    assert [(t["id"], t["status"]) for t in data["targets"]] == [
        ("arrival", "breached"),
        ("resolution", "breached"),
        ("report", "breached"),
    ]
    assert data["events"][0]["source"] == "operator" and data["events"][0]["actor"] == "op2"
    got = client.get(f"{API}/tickets/{data['id']}", headers=auth["supervisor"]).json()
    assert got == data
    # Encoded by pydantic-core: the very bytes JSONResponse writes (and a keyed write stores).
    assert r.content == json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def test_events_and_corrections_over_http(client: TestClient, auth: Any) -> None:
    ticket = post(client, auth, "op2", ticket_body()).json()
    r = post(
        client,
        auth,
        "supervisor",
        {
            "type": "correction",
            "corrects": "2",
            "at": "2022-08-10T12:05:00+08:00",
            "reason": "现场签到单",
        },
        path=f"/tickets/{ticket['id']}/events",
    )
    assert r.status_code == 201, r.text
    data = r.json()
    assert {t["id"]: t["status"] for t in data["targets"]}["arrival"] == "met"
    assert data["events"][-1]["source"] == "supervisor"
    # The answer shows what the write judged; reading the ticket again shows the same.
    got = client.get(f"{API}/tickets/{ticket['id']}", headers=auth["supervisor"]).json()
    assert got == data


def test_a_ticket_posted_with_its_own_corrections_names_the_events_they_correct(
    client: TestClient, auth: Any
) -> None:
    # Their ids are drawn before any event is inserted (tickets.service.write_tickets).
    alone = post(client, auth, "op2", corrected_body("EX-1"))
    batch = post(
        client,
        auth,
        "op2",
        {"tickets": [ticket_body("EX-2"), corrected_body("EX-3"), corrected_body("EX-4")]},
        path="/tickets/batch",
    )
    assert alone.status_code == 201 and batch.status_code == 201, batch.text
    ids = [alone.json()["id"], *(t["id"] for t in batch.json()["tickets"][1:])]
    for ticket_id in ids:
        got = client.get(f"{API}/tickets/{ticket_id}", headers=auth["supervisor"]).json()
        events = got["events"]
        assert [(e["seq"], e["corrects"]) for e in events] == [
            (1, None),
            (2, None),
            (3, None),
            (4, "2"),
            (5, "3"),
        ]
        assert [e["corrected_at"] for e in events[1:3]] == [
            "2022-08-10T12:05:00+08:00",
            "2022-08-10T13:00:00+08:00",
        ]
        # Resolved within 2 hours after the correction: met, where the record said a week.
        assert {t["id"]: t["status"] for t in got["targets"]}["resolution"] == "met"


def test_an_event_on_a_long_ticket_answers_with_every_event(client: TestClient, auth: Any) -> None:
    # Judged by a partial timeline (tickets.service.READ_WHOLE_UP_TO), shown whole.
    body = ticket_body()
    at = "2022-08-10T11:50:00+08:00"
    comments = [{"type": "comment", "at": at, "note": f"第{i}次"} for i in range(40)]
    body["events"] = [body["events"][0], *comments]  # type: ignore[index]
    ticket = post(client, auth, "op2", body).json()
    r = post(
        client,
        auth,
        "op2",
        {"type": "resolved", "at": "2022-08-10T13:00:00+08:00"},
        path=f"/tickets/{ticket['id']}/events",
    )
    assert r.status_code == 201, r.text
    data = r.json()
    assert [e["seq"] for e in data["events"]] == list(range(1, 43))
    assert data["status"] == "resolved"
    got = client.get(f"{API}/tickets/{ticket['id']}", headers=auth["op2"]).json()
    assert got == data


def test_list_filters_search_and_pagination(client: TestClient, auth: Any) -> None:
    for i in range(3):
        post(client, auth, "op2", ticket_body(f"DX-{i}", title=f"存储故障 {i}"))
    post(client, auth, "op1", ticket_body("YY-1", pool="pool1", title="网络丢包"))
    page = client.get(f"{API}/tickets", params={"per_page": 2}, headers=auth["admin"]).json()
    assert page["total"] == 4 and page["total_exact"] is True and len(page["items"]) == 2
    with pytest.MonkeyPatch.context() as patch:  # past the cap the total is a lower bound
        patch.setattr(search, "COUNT_CAP", 3)
        capped = client.get(f"{API}/tickets", params={"per_page": 2}, headers=auth["admin"])
        assert (capped.json()["total"], capped.json()["total_exact"]) == (3, False)
    found = client.get(f"{API}/tickets", params={"q": "丢包"}, headers=auth["admin"]).json()
    assert [t["external_id"] for t in found["items"]] == ["YY-1"]
    by_ext = client.get(f"{API}/tickets", params={"q": "DX-1"}, headers=auth["admin"]).json()
    assert [t["external_id"] for t in by_ext["items"]] == ["DX-1"]
    mine = client.get(f"{API}/tickets", headers=auth["op1"]).json()
    assert [t["external_id"] for t in mine["items"]] == ["YY-1"]
    other = client.get(f"{API}/tickets", params={"pool": "pool2"}, headers=auth["op1"]).json()
    assert other["total"] == 0
    breached = client.get(
        f"{API}/tickets",
        params={"breached": True, "severity": "major", "reported_from": "2022-08-01T00:00:00"},
        headers=auth["admin"],
    ).json()
    assert breached["total"] == 4 and breached["items"][0]["breached"] is True


BAD = [
    ({"pool": "pool9"}, "pool", 422),
    ({"severity": "catastrophic"}, "severity", 422),
    (
        {
            "events": [
                {"type": "reported", "at": "2022-08-10T11:41:00+08:00"},
                {"type": "arrived", "at": "2022-08-10T11:00:00+08:00"},
            ]
        },
        "events[1].at",
        422,
    ),
    ({"events": [{"type": "reported", "at": "2026-11-28T15:00:00+08:00"}]}, "events[0].at", 422),
    (
        {
            "events": [
                {"type": "reported", "at": "2022-08-10T11:41:00+08:00"},
                {
                    "type": "correction",
                    "corrects": "x",
                    "at": "2022-08-10T11:41:00+08:00",
                    "reason": "r",
                },
            ]
        },
        "events[1].corrects",
        422,
    ),
    ({"events": [{"type": "reported", "at": "2022-08-10 25:61"}]}, "events[0].at", 422),
    ({"events": [{"type": "exploded", "at": "2022-08-10T11:41:00+08:00"}]}, "events[0].type", 422),
    ({"recorded_at": "2022-08-10T11:41:00+08:00"}, "recorded_at", 422),
    ({"title": "存储\x00故障"}, "title", 422),
]


@pytest.mark.parametrize(("change", "loc", "status"), BAD)
def test_bad_input_names_the_field_and_writes_nothing(
    client: TestClient, auth: Any, session: Session, change: dict[str, Any], loc: str, status: int
) -> None:
    before = counts(session)
    r = post(client, auth, "op2", ticket_body(**change))
    assert r.status_code == status, r.text
    assert loc in [d["loc"] for d in r.json()["detail"]], r.json()
    session.expire_all()
    assert counts(session) == before


def test_a_bad_event_type_does_not_hide_the_bodys_other_problems(
    client: TestClient, auth: Any, session: Session
) -> None:
    before = counts(session)
    body = ticket_body(
        pool="pool9",
        events=[
            {"type": "reported", "at": "2022-08-10T11:41:00+08:00"},
            {"type": "exploded", "at": "2022-08-10T12:00:00+08:00"},
            {"type": "arrived", "at": "2099-01-01T00:00:00+08:00"},
        ],
    )
    r = post(client, auth, "admin", body)
    assert r.status_code == 422, r.text
    locs = [d["loc"] for d in r.json()["detail"]]
    assert {"events[1].type", "pool", "events[2].at"} <= set(locs), r.json()
    session.expire_all()
    assert counts(session) == before
    # Chinese names are read as their codes in that check too: only the type is wrong here.
    fine = ticket_body(
        pool="政务二云",
        severity="重大故障",
        events=[
            {"type": "reported", "at": "2022-08-10T11:41:00+08:00"},
            {"type": "exploded", "at": "2022-08-10T12:00:00+08:00"},
        ],
    )
    r = post(client, auth, "admin", fine)
    assert r.status_code == 422 and [d["loc"] for d in r.json()["detail"]] == ["events[1].type"]


def test_a_duplicate_external_id_and_another_pool_are_refused(
    client: TestClient, auth: Any
) -> None:
    assert post(client, auth, "op2", ticket_body()).status_code == 201
    dup = post(client, auth, "op2", ticket_body())
    assert dup.status_code == 422 and dup.json()["detail"][0]["loc"] == "external_id"
    other = post(client, auth, "op2", ticket_body("P1-1", pool="pool1"))
    assert other.status_code == 422 and other.json()["detail"][0]["loc"] == "pool"


# Idempotency -----------------------------------------------------------------------------


def test_a_retry_with_the_same_key_replays_and_writes_nothing(
    client: TestClient, auth: Any, session: Session
) -> None:
    first = post(client, auth, "op2", ticket_body(), key="k-1")
    before = counts(session)
    again = post(client, auth, "op2", ticket_body(), key="k-1")
    assert again.status_code == 201 and again.json() == first.json()
    assert again.headers.get("Idempotent-Replayed") == "true"
    session.expire_all()
    assert counts(session) == before
    changed = post(client, auth, "op2", ticket_body(title="另一个"), key="k-1")
    assert changed.status_code == 422
    # Keys belong to the caller: another caller's same key is another request.
    assert post(client, auth, "admin", ticket_body("EX-2"), key="k-1").status_code == 201


def test_a_retry_serialised_anew_is_the_same_request(
    client: TestClient, auth: Any, session: Session
) -> None:
    """A client that encodes the body again for its retry (other spacing, key order,
    escapes) sends the same request: it is replayed, not refused as a different one."""
    body = ticket_body()
    first = client.post(
        f"{API}/tickets",
        content=json.dumps(body, ensure_ascii=False).encode(),
        headers={**auth["op2"], "Idempotency-Key": "k-2", "Content-Type": "application/json"},
    )
    assert first.status_code == 201, first.text
    before = counts(session)
    again = client.post(
        f"{API}/tickets",
        content=json.dumps(dict(reversed(body.items())), indent=2).encode(),
        headers={**auth["op2"], "Idempotency-Key": "k-2", "Content-Type": "application/json"},
    )
    assert again.status_code == 201, again.text
    assert again.json() == first.json() and again.headers.get("Idempotent-Replayed") == "true"
    session.expire_all()
    assert counts(session) == before


def test_an_error_answer_is_replayed_too(client: TestClient, auth: Any) -> None:
    bad = post(client, auth, "op2", ticket_body(pool="pool9"), key="k-bad")
    again = post(client, auth, "op2", ticket_body(pool="pool9"), key="k-bad")
    assert bad.status_code == again.status_code == 422
    assert bad.json() == again.json()


def test_concurrent_identical_requests_create_one_ticket(
    client: TestClient, auth: Any, session: Session
) -> None:
    results: list[int] = []
    barrier = threading.Barrier(4)

    def send() -> None:
        barrier.wait()
        results.append(post(client, auth, "op2", ticket_body(), key="k-race").status_code)

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert 201 in results and set(results) <= {201, 409}
    listed = client.get(f"{API}/tickets", headers=auth["admin"]).json()
    assert listed["total"] == 1


def test_a_replay_survives_a_restart(
    app: FastAPI, auth: Any, settings: Any, engine: Any, clock: Any, client: TestClient
) -> None:
    from monitor.api.app import create_app

    first = post(client, auth, "op2", ticket_body(), key="k-restart")
    with TestClient(create_app(settings, clock=clock, engine=engine)) as restarted:
        again = post(restarted, auth, "op2", ticket_body(), key="k-restart")
    assert again.status_code == 201 and again.json() == first.json()


EVENT_BAD = [
    ({"type": "arrived", "at": "2022-08-10T11:00:00+08:00"}, "at"),
    ({"type": "arrived", "at": "2026-11-28T15:00:00+08:00"}, "at"),
    (
        {
            "type": "correction",
            "corrects": "nope",
            "at": "2022-08-10T12:00:00+08:00",
            "reason": "r",
        },
        "corrects",
    ),
    ({"type": "correction", "corrects": "1", "at": "2022-08-10T12:00:00+08:00"}, "reason"),
    ({"type": "reported", "at": "2022-08-10T12:00:00+08:00"}, "type"),
    ({"type": "arrived", "at": "yesterday"}, "at"),
    ({"type": "arrived", "at": "2022-08-10T12:00:00+08:00", "recorded_at": "x"}, "recorded_at"),
]


@pytest.mark.parametrize(("body", "loc"), EVENT_BAD)
def test_bad_events_over_http_name_the_field_and_write_nothing(
    client: TestClient, auth: Any, session: Session, body: dict[str, Any], loc: str
) -> None:
    ticket = post(client, auth, "op2", ticket_body()).json()
    before = counts(session)
    r = post(client, auth, "op2", body, path=f"/tickets/{ticket['id']}/events")
    assert r.status_code == 422, r.text
    assert loc in [d["loc"] for d in r.json()["detail"]], r.json()
    assert counts(session) == before


def test_an_events_bad_type_does_not_hide_its_other_problems(
    client: TestClient, auth: Any, session: Session
) -> None:
    ticket = post(client, auth, "op2", ticket_body()).json()
    before = counts(session)
    path = f"/tickets/{ticket['id']}/events"
    r = post(client, auth, "op2", {"type": "arived", "at": "2099-01-01T00:00:00+08:00"}, path=path)
    assert r.status_code == 422, r.text
    assert [d["loc"] for d in r.json()["detail"]] == ["type", "at"], r.json()
    session.expire_all()
    assert counts(session) == before
    got = client.get(f"{API}/tickets/{ticket['id']}", headers=auth["op2"]).json()
    assert got["events"] == ticket["events"]


def test_two_parties_writing_at_once_lose_nothing(client: TestClient, auth: Any) -> None:
    # Four writers on one ticket: the ticket's lock (FOR UPDATE on PostgreSQL) puts their
    # appends one after the other, each with the next seq (two writers did not show a
    # missing lock; four did).
    ticket = post(client, auth, "op2", ticket_body()).json()
    path = f"/tickets/{ticket['id']}/events"
    statuses: list[int] = []
    writers = [("op2", 0), ("supervisor", 0), ("op2", 1), ("supervisor", 1)]
    barrier = threading.Barrier(len(writers))

    def write(who: str, k: int) -> None:
        barrier.wait()
        for i in range(4):
            note = f"{who} {k}-{i}"
            body = {"type": "comment", "at": "2022-08-18T10:00:00+08:00", "note": note}
            statuses.append(post(client, auth, who, body, path=path).status_code)

    threads = [threading.Thread(target=write, args=w) for w in writers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [201] * 16
    events = client.get(f"{API}/tickets/{ticket['id']}", headers=auth["admin"]).json()["events"]
    notes = sorted(e["note"] for e in events if e["type"] == "comment")
    assert notes == sorted(f"{who} {k}-{i}" for who, k in writers for i in range(4))
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
