"""Evidence upload and download, with the rights of the ticket it belongs to."""

from __future__ import annotations

import hashlib
import io
from typing import Any

from fastapi.testclient import TestClient

from monitor.core.settings import Settings
from tests.helpers import ticket_body

API = "/api/v1"
PDF = b"%PDF-1.4\n" + "故障分析报告".encode() * 100


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
