"""Every route × every role × own/other pool answers as the table says; a new route without
a row in the table fails this test."""

from __future__ import annotations

import io
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.helpers import ticket_body

API = "/api/v1"
WHO = ("op2", "op1", "supervisor", "admin", "evaluator", "anonymous")
PNG = b"\x89PNG\r\n\x1a\n" + b"0" * 64

# (method, route path) -> expected status for op2 (own pool), op1 (other pool), supervisor,
# admin, evaluator, anonymous. The resources belong to pool2.
EXPECTED: dict[tuple[str, str], tuple[int, ...]] = {
    ("POST", "/tickets"): (201, 422, 403, 201, 403, 401),
    ("POST", "/tickets/batch"): (201, 422, 403, 201, 403, 401),
    ("GET", "/tickets"): (200, 200, 200, 200, 200, 401),
    ("GET", "/tickets/{ticket_id}"): (200, 404, 200, 200, 200, 401),
    ("GET", "/tickets/by-external-id/{external_id}"): (200, 404, 200, 200, 200, 401),
    ("POST", "/tickets/{ticket_id}/events"): (201, 404, 201, 201, 403, 401),
    ("POST", "/tickets/{ticket_id}/evidence"): (201, 404, 201, 201, 403, 401),
    ("GET", "/tickets/{ticket_id}/evidence/{sha256}"): (200, 404, 200, 200, 200, 401),
    ("GET", "/breaches"): (200, 200, 200, 200, 200, 401),
    ("GET", "/breaches/{breach_id}"): (200, 404, 200, 200, 200, 401),
    ("POST", "/breaches/{breach_id}/review"): (403, 403, 200, 200, 403, 401),
    # No correction of this world is disputed: the supervision unit is told so (404).
    ("POST", "/tickets/{ticket_id}/corrections/{seq}/decision"): (403, 403, 404, 404, 403, 401),
    ("GET", "/findings"): (200, 200, 200, 200, 403, 401),
    ("GET", "/scoring/{year}"): (403, 403, 200, 200, 200, 401),
    ("GET", "/reports/monthly/{month}"): (403, 403, 200, 200, 200, 401),
}


def api_routes(app: FastAPI) -> set[tuple[str, str]]:
    """Every operation the application publishes under the API prefix."""
    return {
        (method.upper(), path.removeprefix(API))
        for path, operations in app.openapi()["paths"].items()
        if path.startswith(API)
        for method in operations
    }


def test_every_api_route_is_in_the_table(app: FastAPI) -> None:
    assert api_routes(app) == set(EXPECTED)


@pytest.fixture
def world(client: TestClient, auth: dict[str, dict[str, str]]) -> dict[str, Any]:
    ticket = client.post(f"{API}/tickets", json=ticket_body(), headers=auth["admin"]).json()
    upload = client.post(
        f"{API}/tickets/{ticket['id']}/evidence",
        headers=auth["admin"],
        files={"file": ("恢复截图.png", io.BytesIO(PNG), "image/png")},
    )
    assert upload.status_code == 201, upload.text
    breach = client.get(f"{API}/breaches", headers=auth["admin"]).json()["items"][0]
    return {
        "ticket_id": ticket["id"],
        "sha256": upload.json()["sha256"],
        "breach_id": breach["id"],
        "year": 2022,
        "seq": 1,
        "external_id": ticket["external_id"],
        "month": "2022-08",
    }


def call(
    client: TestClient, auth: Any, who: str, method: str, path: str, world: Any, n: int
) -> int:
    url = API + path.format(**world)
    headers = dict(auth[who])
    if method == "GET":
        return client.get(url, headers=headers).status_code
    if path == "/tickets":
        body = ticket_body(f"M-{who}-{n}", pool="pool2")
        return client.post(url, json=body, headers=headers).status_code
    if path == "/tickets/batch":
        tickets = [ticket_body(f"M-{who}-{n}-{i}", pool="pool2") for i in range(2)]
        return client.post(url, json={"tickets": tickets}, headers=headers).status_code
    if path.endswith("/events"):
        return client.post(
            url,
            json={"type": "comment", "at": "2022-08-18T10:00:00+08:00", "note": "巡检"},
            headers=headers,
        ).status_code
    if path.endswith("/evidence"):
        return client.post(
            url,
            headers=headers,
            files={"file": (f"f{n}.png", io.BytesIO(PNG + str(n).encode()), "image/png")},
        ).status_code
    if path.endswith("/review"):
        tag = client.get(API + f"/breaches/{world['breach_id']}", headers=auth["admin"]).headers[
            "ETag"
        ]
        headers["If-Match"] = tag
        return client.post(url, json={"decision": "confirmed"}, headers=headers).status_code
    if path.endswith("/decision"):
        body = {"decision": "accepted", "reason": "核实"}
        return client.post(url, json=body, headers=headers).status_code
    raise AssertionError(f"no request for {method} {path}")


def test_route_role_pool_matrix(client: TestClient, auth: Any, world: Any) -> None:
    wrong = []
    n = 0
    for (method, path), statuses in sorted(EXPECTED.items()):
        for who, expected in zip(WHO, statuses, strict=True):
            n += 1
            got = call(client, auth, who, method, path, world, n)
            if got != expected:
                wrong.append(f"{method} {path} as {who}: {got}, expected {expected}")
    assert not wrong, "\n".join(wrong)


def test_another_pools_records_are_absent_from_lists(
    client: TestClient, auth: Any, world: Any
) -> None:
    assert client.get(f"{API}/breaches", headers=auth["op1"]).json()["total"] == 0
    assert client.get(f"{API}/breaches", headers=auth["op2"]).json()["total"] > 0
    assert client.get(f"{API}/findings", headers=auth["op1"]).json()["items"] == []


def test_a_bad_token_is_refused(client: TestClient, auth: Any) -> None:
    bad = auth["admin"]["Authorization"][:-2] + "xx"
    r = client.get(f"{API}/tickets", headers={"Authorization": bad})
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"
