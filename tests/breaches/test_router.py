"""Reviewing breaches over HTTP: optimistic concurrency, and what a breach says."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.helpers import ticket_body

API = "/api/v1"
PDF = b"%PDF-1.4\n" + "故障分析报告".encode() * 100


@pytest.fixture
def breach(client: TestClient, auth: Any) -> dict[str, Any]:
    client.post(f"{API}/tickets", json=ticket_body(), headers=auth["op2"])
    item = client.get(
        f"{API}/breaches", params={"pending": True}, headers=auth["supervisor"]
    ).json()["items"][0]
    return item


def test_reviews_need_the_current_etag(client: TestClient, auth: Any, breach: Any) -> None:
    url = f"{API}/breaches/{breach['id']}"
    tag = client.get(url, headers=auth["supervisor"]).headers["ETag"]
    body = {"decision": "waived", "reason": "计划内停机，经市政数局同意"}
    assert client.post(f"{url}/review", json=body, headers=auth["supervisor"]).status_code == 428
    ok = client.post(f"{url}/review", json=body, headers={**auth["supervisor"], "If-Match": tag})
    assert ok.status_code == 200, ok.text
    assert ok.json()["review"] == "waived" and ok.json()["reviews"][0]["reviewer"] == "supervisor"
    stale = client.post(
        f"{url}/review",
        json={"decision": "confirmed"},
        headers={**auth["supervisor"], "If-Match": tag},
    )
    assert stale.status_code == 412
    again = client.post(
        f"{url}/review",
        json={"decision": "confirmed"},
        headers={**auth["admin"], "If-Match": ok.headers["ETag"]},
    )
    assert again.status_code == 200
    assert [r["decision"] for r in again.json()["reviews"]] == ["waived", "confirmed"]
    assert again.json()["reviews"][1]["supersedes"] == again.json()["reviews"][0]["id"]


def test_a_review_cannot_smuggle_fields(client: TestClient, auth: Any, breach: Any) -> None:
    url = f"{API}/breaches/{breach['id']}"
    tag = client.get(url, headers=auth["supervisor"]).headers["ETag"]
    r = client.post(
        f"{url}/review",
        json={"decision": "waived", "reason": "x", "reviewer": "someone else"},
        headers={**auth["supervisor"], "If-Match": tag},
    )
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == "reviewer"
    r = client.post(
        f"{url}/review",
        json={"decision": "waived"},
        headers={**auth["supervisor"], "If-Match": tag},
    )
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == "reason"


def test_a_breach_says_how_late_it_was(client: TestClient, auth: Any) -> None:
    client.post(f"{API}/tickets", json=ticket_body(), headers=auth["op2"])
    items = client.get(f"{API}/breaches", headers=auth["supervisor"]).json()["items"]
    arrival = next(b for b in items if b["target"] == "arrival")
    # Reported 11:41, arrived 12:30: 19 minutes past the 12:11 deadline.
    assert arrival["overrun_seconds"] == 19 * 60
    assert arrival["stop"] == "2022-08-10T12:30:00+08:00"


def test_a_breach_a_correction_disproved_shows_cleared_and_refuses_review(
    client: TestClient, auth: Any, breach: Any
) -> None:
    ticket = client.get(f"{API}/tickets/{breach['ticket']}", headers=auth["supervisor"]).json()
    arrived = next(e for e in ticket["events"] if e["type"] == "arrived")
    fix = {
        "type": "correction",
        "corrects": arrived["id"],
        "at": "2022-08-10T12:05:00+08:00",
        "reason": "按签到单更正",
    }
    posted = client.post(f"{API}/tickets/{ticket['id']}/events", json=fix, headers=auth["op2"])
    assert posted.status_code == 201, posted.text
    url = f"{API}/breaches/{breach['id']}"
    shown = client.get(url, headers=auth["supervisor"])
    data = shown.json()
    assert data["review"] == "cleared" and data["cleared_at"].endswith("+08:00")
    assert data["cleared_by"]["type"] == "correction"
    assert data["cleared_by"]["reason"] == "按签到单更正"
    refused = client.post(
        f"{url}/review",
        json={"decision": "confirmed"},
        headers={**auth["supervisor"], "If-Match": shown.headers["ETag"]},
    )
    assert refused.status_code == 409
    message = refused.json()["detail"]
    assert "no longer stands" in message and "按签到单更正" in message and "+08:00" in message


def test_a_malformed_if_match_is_called_malformed(
    client: TestClient, auth: Any, breach: Any
) -> None:
    url = f"{API}/breaches/{breach['id']}/review"
    for bad in ("breach-1-0", '"unterminated', "W/"):
        answer = client.post(
            url, json={"decision": "confirmed"}, headers={**auth["supervisor"], "If-Match": bad}
        )
        assert answer.status_code == 400, bad
        assert "malformed" in answer.json()["detail"] and "meanwhile" not in answer.json()["detail"]


def test_breaches_come_a_page_at_a_time_as_they_come_all_at_once(
    client: TestClient, auth: Any
) -> None:
    """`per_page` reads one page of the standing breaches, oldest first, with the total of
    all; without it every breach comes, as before. Each item says what the breach's own
    page says (its reviews, how late it was), however many are read at once."""
    for k in range(3):
        client.post(f"{API}/tickets", json=ticket_body(f"P-{k}"), headers=auth["op2"])
    client.post(f"{API}/tickets", json=ticket_body("P-9", pool="pool1"), headers=auth["admin"])
    sup = auth["supervisor"]
    everything = client.get(f"{API}/breaches", headers=sup).json()
    assert everything["total"] == len(everything["items"]) >= 8
    first = everything["items"][0]
    url = f"{API}/breaches/{first['id']}"
    tag = client.get(url, headers=sup).headers["ETag"]
    body = {"decision": "confirmed", "reason": "核实超时"}
    assert client.post(f"{url}/review", json=body, headers={**sup, "If-Match": tag}).is_success
    everything = client.get(f"{API}/breaches", headers=sup).json()["items"]
    assert everything[0]["reviews"][0]["reason"] == "核实超时"
    pages = []
    for page in range(1, 10):
        got = client.get(f"{API}/breaches", params={"page": page, "per_page": 3}, headers=sup)
        assert got.status_code == 200 and got.json()["total"] == len(everything)
        pages += got.json()["items"]
        assert len(got.json()["items"]) <= 3
    assert pages == everything
    assert [b["id"] for b in everything] == sorted(b["id"] for b in everything)
    for item in everything:
        assert client.get(f"{API}/breaches/{item['id']}", headers=sup).json() == item
    # An operator's pages hold its own pool's breaches only, and count only those.
    mine = client.get(f"{API}/breaches", params={"per_page": 2}, headers=auth["op1"]).json()
    assert mine["total"] == sum(1 for b in everything if b["pool"] == "pool1")
    assert {b["pool"] for b in mine["items"]} == {"pool1"}
    for wrong in ("0", "501", "x"):
        bad = client.get(f"{API}/breaches", params={"per_page": wrong}, headers=sup)
        assert bad.status_code == 422 and "per_page" in bad.text, bad.text


def test_findings_come_a_page_at_a_time_and_by_kind(client: TestClient, auth: Any) -> None:
    """`per_page` reads one page of the findings, oldest first, of one kind when asked, with
    the total of all that match; without it every finding comes, as before."""
    for k in range(3):
        client.post(f"{API}/tickets", json=ticket_body(f"F-{k}"), headers=auth["op2"])
    client.post(f"{API}/tickets", json=ticket_body("F-9", pool="pool1"), headers=auth["admin"])
    sup = auth["supervisor"]
    everything = client.get(f"{API}/findings", headers=sup).json()
    items = everything["items"]
    assert everything["total"] == len(items) >= 6
    kinds = [f["kind"] for f in items]
    assert len(set(kinds)) >= 2
    for kind in (None, max(set(kinds), key=kinds.count)):
        wanted = [f for f in items if kind is None or f["kind"] == kind]
        pages: list[dict[str, Any]] = []
        for page in range(1, 12):
            params: dict[str, Any] = {"page": page, "per_page": 3}
            if kind is not None:
                params["kind"] = kind
            got = client.get(f"{API}/findings", params=params, headers=sup).json()
            assert got["total"] == len(wanted) and len(got["items"]) <= 3
            pages += got["items"]
        assert pages == wanted
    mine = client.get(f"{API}/findings", params={"per_page": 2}, headers=auth["op1"]).json()
    assert mine["total"] == sum(1 for f in items if f["pool"] == "pool1") > 0
    assert {f["pool"] for f in mine["items"]} == {"pool1"}
    for wrong in ("0", "501", "x"):
        bad = client.get(f"{API}/findings", params={"per_page": wrong}, headers=sup)
        assert bad.status_code == 422 and "per_page" in bad.text, bad.text
