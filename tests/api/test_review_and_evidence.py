"""Optimistic concurrency on reviews, and evidence upload/download."""

from __future__ import annotations

import hashlib
import io
from typing import Any

import pytest
from fastapi.testclient import TestClient

from monitor.core.settings import Settings
from tests.api.conftest import ticket_body

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


def test_evidence_is_stored_by_content_and_served_with_the_tickets_rights(
    client: TestClient, auth: Any, settings: Settings
) -> None:
    ticket = client.post(f"{API}/tickets", json=ticket_body(), headers=auth["op2"]).json()
    r = client.post(
        f"{API}/tickets/{ticket['id']}/evidence",
        headers=auth["op2"],
        files={"file": ("报告.pdf", io.BytesIO(PDF), "application/pdf")},
        data={"note": "故障分析报告"},
    )
    assert r.status_code == 201, r.text
    data = r.json()
    assert data["sha256"] == hashlib.sha256(PDF).hexdigest() and data["size"] == len(PDF)
    stored = settings.evidence_dir / data["sha256"][:2] / data["sha256"][2:4] / data["sha256"]
    assert stored.read_bytes() == PDF
    got = client.get(data["url"], headers=auth["evaluator"])
    assert got.status_code == 200 and got.content == PDF
    assert got.headers["content-type"] == "application/pdf"
    assert client.get(data["url"], headers=auth["op1"]).status_code == 404
    events = client.get(f"{API}/tickets/{ticket['id']}", headers=auth["op2"]).json()["events"]
    assert events[-1]["type"] == "evidence_added"
    assert events[-1]["evidence"] == [f"sha256:{data['sha256']}"]


def test_evidence_limits(client: TestClient, auth: Any, settings: Settings) -> None:
    ticket = client.post(f"{API}/tickets", json=ticket_body(), headers=auth["op2"]).json()
    url = f"{API}/tickets/{ticket['id']}/evidence"
    exe = client.post(
        url,
        headers=auth["op2"],
        files={"file": ("x.exe", io.BytesIO(b"MZ\x90\x00"), "application/x-msdownload")},
    )
    assert exe.status_code == 422 and exe.json()["detail"][0]["loc"] == "file"
    liar = client.post(
        url,
        headers=auth["op2"],
        files={"file": ("x.pdf", io.BytesIO(b"MZ\x90\x00"), "application/pdf")},
    )
    assert liar.status_code == 422
    settings.evidence_max_bytes = 1000
    big = client.post(
        url,
        headers=auth["op2"],
        files={"file": ("big.pdf", io.BytesIO(PDF * 10), "application/pdf")},
    )
    assert big.status_code == 413
    events = client.get(f"{API}/tickets/{ticket['id']}", headers=auth["op2"]).json()["events"]
    assert all(e["type"] != "evidence_added" for e in events)


def test_a_breach_says_how_late_it_was(client: TestClient, auth: Any) -> None:
    client.post(f"{API}/tickets", json=ticket_body(), headers=auth["op2"])
    items = client.get(f"{API}/breaches", headers=auth["supervisor"]).json()["items"]
    arrival = next(b for b in items if b["target"] == "arrival")
    # Reported 11:41, arrived 12:30: 19 minutes past the 12:11 deadline.
    assert arrival["overrun_seconds"] == 19 * 60
    assert arrival["stop"] == "2022-08-10T12:30:00+08:00"


def test_an_event_can_cite_evidence_uploaded_to_its_ticket_only(
    client: TestClient, auth: Any
) -> None:
    ticket = client.post(f"{API}/tickets", json=ticket_body(), headers=auth["op2"]).json()
    other = client.post(f"{API}/tickets", json=ticket_body("EX-2"), headers=auth["op2"]).json()
    sha = client.post(
        f"{API}/tickets/{ticket['id']}/evidence",
        headers=auth["op2"],
        files={"file": ("r.pdf", io.BytesIO(PDF), "application/pdf")},
    ).json()["sha256"]
    event = {
        "type": "verified",
        "at": "2022-08-19T10:00:00+08:00",
        "evidence": [f"sha256:{sha}", "https://example.org/ticket/1"],
    }
    ok = client.post(f"{API}/tickets/{ticket['id']}/events", json=event, headers=auth["op2"])
    assert ok.status_code == 201, ok.text
    elsewhere = client.post(f"{API}/tickets/{other['id']}/events", json=event, headers=auth["op2"])
    assert elsewhere.status_code == 422
    assert elsewhere.json()["detail"][0]["loc"] == "evidence[0]"
