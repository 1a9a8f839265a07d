"""Finding tickets as people write them: external ids, Chinese names, unencoded offsets."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.helpers import SPEC_TICKET


@pytest.fixture
def posted(client: TestClient, auth: dict[str, Any]) -> list[dict[str, Any]]:
    one = client.post("/api/v1/tickets", json=SPEC_TICKET, headers=auth["op2"])
    assert one.status_code == 201, one.text
    # The same number in the other pool, reported in Chinese words.
    other = {**SPEC_TICKET, "pool": "政务一云", "severity": "一般故障", "source": "监控发现"}
    other["events"] = [
        {"type": "报障", "at": "2022-09-01T10:00:00+08:00"},
        {"type": "响应", "at": "2022-09-01T10:10:00+08:00"},
    ]
    two = client.post("/api/v1/tickets", json=other, headers=auth["admin"])
    assert two.status_code == 201, two.text
    assert (two.json()["pool"], two.json()["severity"], two.json()["source"]) == (
        "pool1",
        "general",
        "monitoring",
    )
    return [one.json(), two.json()]


def test_a_ticket_is_found_by_external_id_within_the_callers_pool(
    client: TestClient, auth: dict[str, Any], posted: list[dict[str, Any]]
) -> None:
    url = "/api/v1/tickets/by-external-id/EX-0001"
    mine = client.get(url, headers=auth["op2"])
    assert mine.status_code == 200 and mine.json()["id"] == posted[0]["id"]
    assert client.get(url, headers=auth["op1"]).json()["id"] == posted[1]["id"]
    both = client.get(url, headers=auth["supervisor"])
    assert both.status_code == 409 and "pool" in both.json()["detail"]
    picked = client.get(url, params={"pool": "政务二云"}, headers=auth["supervisor"])
    assert picked.json()["id"] == posted[0]["id"]
    missing = client.get("/api/v1/tickets/by-external-id/NOPE", headers=auth["op2"])
    assert missing.status_code == 404


def test_filters_accept_chinese_names_and_refuse_unknown_words(
    client: TestClient, auth: dict[str, Any], posted: list[dict[str, Any]]
) -> None:
    who = auth["supervisor"]

    def ids(**params: str) -> list[int]:
        answer = client.get("/api/v1/tickets", params=params, headers=who)
        assert answer.status_code == 200, answer.text
        return [t["id"] for t in answer.json()["items"]]

    assert ids(severity="重大故障") == [posted[0]["id"]]
    assert ids(pool="政务一云") == ids(pool="pool1") == [posted[1]["id"]]
    assert ids(source="监控发现") == [posted[1]["id"]]
    assert ids(status="处理中") == ids(status="open")
    bad = client.get("/api/v1/tickets", params={"status": "完成了"}, headers=who)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == "query.status"


def test_an_unencoded_plus_offset_in_a_query_is_understood(
    client: TestClient, auth: dict[str, Any], posted: list[dict[str, Any]]
) -> None:
    # `+08:00` typed into a URL arrives as ` 08:00`.
    url = (
        "/api/v1/tickets?reported_from=2022-08-10T11:00:00+08:00"
        "&reported_to=2022-08-31T00:00:00%2B08:00"
    )
    answer = client.get(url, headers=auth["supervisor"])
    assert answer.status_code == 200, answer.text
    assert [t["id"] for t in answer.json()["items"]] == [posted[0]["id"]]
    score = client.get(
        "/api/v1/scoring/2022?as_of=2023-01-01T00:00:00+08:00", headers=auth["evaluator"]
    )
    assert score.status_code == 200 and score.json()["as_of"].startswith("2023-01-01T00:00:00")
