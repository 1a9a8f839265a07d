"""The evaluated party cannot overturn a reviewed breach alone: its correction is held, the
breach stands as disputed, a finding names it, until the supervision unit decides."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.helpers import ticket_body

API = "/api/v1"


def late_reviewed_ticket(client: TestClient, auth: Any) -> tuple[int, dict[str, Any]]:
    # On site 12:30 for an 11:41 report (19 min late); resolved in time.
    body = ticket_body(
        "DX-2022-0810",
        events=[
            {"id": "r", "type": "reported", "at": "2022-08-10T11:41:00+08:00"},
            {"id": "a", "type": "arrived", "at": "2022-08-10T12:30:00+08:00"},
            {"type": "resolved", "at": "2022-08-10T13:20:00+08:00"},
            {"type": "report_submitted", "at": "2022-08-11T10:00:00+08:00"},
        ],
    )
    ticket = client.post(f"{API}/tickets", json=body, headers=auth["op2"]).json()
    breach = next(
        b
        for b in client.get(f"{API}/breaches", headers=auth["supervisor"]).json()["items"]
        if b["ticket"] == ticket["id"] and b["target"] == "arrival"
    )
    etag = client.get(f"{API}/breaches/{breach['id']}", headers=auth["supervisor"]).headers["ETag"]
    r = client.post(
        f"{API}/breaches/{breach['id']}/review",
        json={"decision": "confirmed"},
        headers={**auth["supervisor"], "If-Match": etag},
    )
    assert r.status_code == 200
    return ticket["id"], breach


def occurrences(client: TestClient, auth: Any) -> int:
    score = client.get(f"{API}/scoring/2022", headers=auth["admin"]).json()
    return int(score["indicators"][0]["occurrences"])


def correct_arrival(client: TestClient, auth: Any, tid: int) -> int:
    fix = {
        "type": "correction",
        "corrects": "a",
        "at": "2022-08-10T12:05:00+08:00",
        "reason": "工程师实际 12:05 到场，登记有误",
    }
    r = client.post(f"{API}/tickets/{tid}/events", json=fix, headers=auth["op2"])
    assert r.status_code == 201, r.text
    return int(r.json()["events"][-1]["seq"])


def test_an_operators_correction_of_a_confirmed_breach_waits_for_the_supervisor(
    client: TestClient, auth: Any
) -> None:
    tid, breach = late_reviewed_ticket(client, auth)
    before = occurrences(client, auth)
    seq = correct_arrival(client, auth, tid)
    shown = client.get(f"{API}/breaches/{breach['id']}", headers=auth["supervisor"]).json()
    assert shown["disputed_by"] == [f"#{seq}"] and shown["review"] == "confirmed"
    assert occurrences(client, auth) == before  # the score does not move
    findings = client.get(f"{API}/findings", headers=auth["supervisor"]).json()["items"]
    disputed = [f for f in findings if f["kind"] == "disputed_correction"]
    assert len(disputed) == 1 and f"#{seq}" in disputed[0]["detail"]
    # The operator cannot decide it; the supervisor must give a reason.
    url = f"{API}/tickets/{tid}/corrections/{seq}/decision"
    assert (
        client.post(
            url, json={"decision": "accepted", "reason": "x"}, headers=auth["op2"]
        ).status_code
        == 403
    )
    assert (
        client.post(
            url, json={"decision": "accepted", "reason": ""}, headers=auth["supervisor"]
        ).status_code
        == 422
    )
    r = client.post(
        url,
        json={"decision": "accepted", "reason": "调取门禁记录核实 12:05 到场"},
        headers=auth["supervisor"],
    )
    assert r.status_code == 200 and r.json()["decided_by"] == "supervisor"
    assert occurrences(client, auth) == before - 1  # now the correction counts
    standing = client.get(f"{API}/breaches", headers=auth["supervisor"]).json()["items"]
    assert breach["id"] not in [b["id"] for b in standing]
    findings = client.get(f"{API}/findings", headers=auth["supervisor"]).json()["items"]
    assert not [f for f in findings if f["kind"] == "disputed_correction"]
    again = client.post(
        url, json={"decision": "rejected", "reason": "改判"}, headers=auth["supervisor"]
    )
    assert again.status_code == 409


def test_a_rejected_correction_never_moves_the_clock(client: TestClient, auth: Any) -> None:
    tid, breach = late_reviewed_ticket(client, auth)
    before = occurrences(client, auth)
    seq = correct_arrival(client, auth, tid)
    r = client.post(
        f"{API}/tickets/{tid}/corrections/{seq}/decision",
        json={"decision": "rejected", "reason": "无到场佐证"},
        headers=auth["supervisor"],
    )
    assert r.status_code == 200
    shown = client.get(f"{API}/breaches/{breach['id']}", headers=auth["supervisor"]).json()
    assert shown["disputed_by"] == [] and shown["review"] == "confirmed"
    assert occurrences(client, auth) == before
    ticket = client.get(f"{API}/tickets/{tid}", headers=auth["supervisor"]).json()
    arrival = next(t for t in ticket["targets"] if t["id"] == "arrival")
    assert arrival["status"] == "breached"
