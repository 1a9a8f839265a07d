"""Request bodies shared by the API tests (the app and tokens come from tests/conftest.py)."""

from __future__ import annotations


def ticket_body(
    external_id: str = "EX-0001", pool: str = "pool2", **extra: object
) -> dict[str, object]:
    return {
        "external_id": external_id,
        "pool": pool,
        "severity": "major",
        "title": "重要业务系统异常",
        "source": "user_report",
        "events": [
            {"type": "reported", "at": "2022-08-10T11:41:00+08:00"},
            {"type": "arrived", "at": "2022-08-10T12:30:00+08:00"},
            {"type": "resolved", "at": "2022-08-17T18:00:00+08:00"},
        ],
        **extra,
    }
