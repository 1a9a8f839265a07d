"""Every input is bounded and a bad one is answered with a 4xx naming the field, never a
500; nothing is written."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from monitor.api.app import create_app
from monitor.auth.service import create_token
from monitor.core.clock import FixedClock
from monitor.core.db import make_engine, session_scope
from monitor.core.settings import Settings
from tests.conftest import APP_URL, CONFIG, _truncate
from tests.helpers import ticket_body, while_an_import_runs

API = "/api/v1"
AT = "2022-08-10T13:00:00+08:00"


def created(client: TestClient, auth: Any) -> int:
    r = client.post(f"{API}/tickets", json=ticket_body(), headers=auth["op2"])
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def count(client: TestClient, auth: Any) -> int:
    return int(client.get(f"{API}/tickets", headers=auth["admin"]).json()["total"])


def operator_headers(engine: Engine, clock: FixedClock) -> dict[str, str]:
    """An operator of pool2's bearer token, for an app built on `engine`."""
    with session_scope(engine) as session:
        _, value = create_token(
            session,
            name="o",
            role="operator",
            pool="pool2",
            known_pools=["pool2"],
            now=clock.now(),
        )
    return {"Authorization": f"Bearer {value}"}


def served_on_postgresql(
    owner: Engine, tmp_path: Path, clock: FixedClock, **engine_options: Any
) -> tuple[Engine, FastAPI]:
    """An app on the emptied test database, as the app role, and its engine."""
    _truncate(owner)
    settings = Settings(database_url=APP_URL, config_dir=CONFIG, evidence_dir=tmp_path / "ev")
    engine = make_engine(APP_URL, **engine_options)
    return engine, create_app(settings, clock=clock, engine=engine)


@pytest.mark.parametrize("at", ["0001-01-01T00:00:00+08:00", "9999-12-31T23:00:00-12:00"])
def test_times_outside_the_years_are_named_not_500(client: TestClient, auth: Any, at: str) -> None:
    body = ticket_body()
    body["events"][0]["at"] = at
    r = client.post(f"{API}/tickets", json=body, headers=auth["op2"])
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == "events[0].at"
    tid = created(client, auth)
    r = client.post(
        f"{API}/tickets/{tid}/events", json={"type": "comment", "at": at}, headers=auth["op2"]
    )
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == "at"
    r = client.get(f"{API}/tickets", params={"reported_from": at}, headers=auth["op2"])
    assert r.status_code == 422 and "reported_from" in r.json()["detail"][0]["loc"]
    r = client.get(f"{API}/scoring/2022", params={"as_of": at}, headers=auth["admin"])
    assert r.status_code == 422 and "as_of" in r.json()["detail"][0]["loc"]
    assert count(client, auth) == 1


def test_bad_text_is_refused_by_name(client: TestClient, auth: Any) -> None:
    tid = created(client, auth)
    surrogate = '{"type": "comment", "at": "AT", "evidence": ["\\ud800"]}'.replace("AT", AT)
    r = client.post(
        f"{API}/tickets/{tid}/events",
        content=surrogate.encode(),
        headers={**auth["op2"], "Content-Type": "application/json"},
    )
    assert r.status_code == 422 and r.json()["detail"][0]["loc"].startswith("evidence")
    # Inside a ticket's events too, named where it is (each event checks its own fields).
    for text, loc in (("a\x00b", "events[1].note"), ("\ud800", "events[1].note")):
        body = ticket_body()
        body["events"][1]["note"] = text
        data = json.dumps(body).encode()  # (a lone surrogate as its JSON escape)
        r = client.post(
            f"{API}/tickets",
            content=data,
            headers={**auth["op2"], "Content-Type": "application/json"},
        )
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == loc, r.text
    for field, value in (("title", "   "), ("external_id", "DX\u200b-1"), ("external_id", " ")):
        r = client.post(f"{API}/tickets", json=ticket_body(**{field: value}), headers=auth["op2"])
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == field, (field, r.text)
    for name, note, loc in ((b"a\x00.pdf", b"ok", "file.filename"), (b"a.pdf", b"x\x00", "note")):
        r = client.post(
            f"{API}/tickets/{tid}/evidence",
            headers={**auth["op2"], "Content-Type": "multipart/form-data; boundary=B"},
            content=multipart(name, note),
        )
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == loc, r.text


def multipart(filename: bytes, note: bytes) -> bytes:
    """A form as a client may really send it (httpx would escape the NUL in a file name)."""
    return (
        b'--B\r\nContent-Disposition: form-data; name="note"\r\n\r\n' + note + b"\r\n"
        b'--B\r\nContent-Disposition: form-data; name="file"; filename="' + filename + b'"\r\n'
        b"Content-Type: application/pdf\r\n\r\n%PDF-1.4 x\r\n--B--\r\n"
    )


def test_sequence_numbers_are_reserved_event_ids(client: TestClient, auth: Any) -> None:
    body = ticket_body()
    body["events"][0]["id"] = "#1"
    r = client.post(f"{API}/tickets", json=body, headers=auth["op2"])
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == "events[0].id"
    body["events"][0]["id"] = "1"
    assert client.post(f"{API}/tickets", json=body, headers=auth["op2"]).status_code == 422
    assert count(client, auth) == 0


def test_counts_and_sizes_are_bounded(client: TestClient, auth: Any, settings: Settings) -> None:
    tid = created(client, auth)
    many = {"type": "comment", "at": AT, "evidence": [f"https://x/{i}" for i in range(21)]}
    r = client.post(f"{API}/tickets/{tid}/events", json=many, headers=auth["op2"])
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == "evidence"
    body = ticket_body("BIG")
    body["events"] += [{"type": "comment", "at": AT}] * 200
    r = client.post(f"{API}/tickets", json=body, headers=auth["op2"])
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == "events"
    huge = {"type": "comment", "at": AT, "note": "x", "evidence": ["y" * 5_000_000]}
    r = client.post(f"{API}/tickets/{tid}/events", json=huge, headers=auth["op2"])
    assert r.status_code == 413 and "body" in r.json()["detail"]
    assert len(client.get(f"{API}/tickets/{tid}", headers=auth["op2"]).json()["events"]) == 3


def test_a_body_over_the_limit_without_its_length_is_refused_as_too_large(
    client: TestClient, auth: Any, settings: Settings
) -> None:
    """Sent in chunks (no Content-Length), it is counted as it arrives: 413 naming the body
    and its limit, not FastAPI's bare 400 "error parsing the body"."""
    chunk = b" " * 65536

    def chunks() -> Iterator[bytes]:
        yield b'{"tickets": ['
        for _ in range(settings.max_body_bytes // len(chunk) + 1):
            yield chunk
        yield b"]}"

    headers = {**auth["op2"], "Content-Type": "application/json"}
    r = client.post(f"{API}/tickets/batch", content=chunks(), headers=headers)
    assert r.status_code == 413, r.text
    assert r.json()["detail"] == (
        f"body: the request is larger than the limit of {settings.max_body_bytes} bytes"
    )
    assert count(client, auth) == 0


def test_a_tickets_history_is_bounded(
    settings: Settings, engine: Engine, clock: FixedClock, auth: Any, client: TestClient
) -> None:
    tid = created(client, auth)
    small = create_app(
        settings.model_copy(update={"max_events_per_ticket": 4}), clock=clock, engine=engine
    )
    with TestClient(small) as other:
        ok = other.post(
            f"{API}/tickets/{tid}/events", json={"type": "comment", "at": AT}, headers=auth["op2"]
        )
        assert ok.status_code == 201
        r = other.post(
            f"{API}/tickets/{tid}/events", json={"type": "comment", "at": AT}, headers=auth["op2"]
        )
        assert r.status_code == 422 and "limit" in r.json()["detail"][0]["msg"]


def test_an_over_limit_upload_is_refused_and_leaves_no_file(
    settings: Settings, engine: Engine, clock: FixedClock, auth: Any, client: TestClient
) -> None:
    tid = created(client, auth)
    small = create_app(
        settings.model_copy(update={"evidence_max_bytes": 1000}), clock=clock, engine=engine
    )
    with TestClient(small) as other:
        for size in (2000, 200_000):
            r = other.post(
                f"{API}/tickets/{tid}/evidence",
                headers=auth["op2"],
                files={"file": ("big.pdf", io.BytesIO(b"%PDF-" + b"x" * size), "application/pdf")},
            )
            assert r.status_code == 413, r.text
    files = [p for p in Path(settings.evidence_dir).rglob("*") if p.is_file()]
    assert files == []


def test_a_ticket_write_waiting_too_long_for_an_import_gets_503_then_goes_through(
    db_url: str, settings: Settings, clock: FixedClock
) -> None:
    """While an import holds the creation of tickets (SQLite's write lock; on PostgreSQL
    its lock on creation), a POST /tickets waits the busy timeout, then answers 503 with
    Retry-After and writes nothing, rather than waiting without end and holding a pooled
    connection; once the import ends, the retry is written."""
    engine = make_engine(db_url, busy_seconds=0.3)
    app = create_app(settings, clock=clock, engine=engine)
    with TestClient(app) as client:
        headers = operator_headers(engine, clock)
        r = while_an_import_runs(
            db_url, lambda: client.post(f"{API}/tickets", json=ticket_body(), headers=headers)
        )
        assert r.status_code == 503 and r.headers["Retry-After"] == "5", r.text
        assert "busy" in json.loads(r.text)["detail"]
        assert client.get(f"{API}/tickets", headers=headers).json()["total"] == 0
        r = client.post(f"{API}/tickets", json=ticket_body(), headers=headers)
        assert r.status_code == 201, r.text
    engine.dispose()


def test_a_request_finding_no_free_database_connection_gets_503(
    db_url: str, settings: Settings, clock: FixedClock
) -> None:
    """Every pooled connection taken (writes waiting for an import hold theirs): a request
    that cannot get one within the pool's timeout answers 503 with Retry-After, not 500."""
    engine = make_engine(db_url, pool_size=1, max_overflow=0, pool_timeout=0.2)
    app = create_app(settings, clock=clock, engine=engine)
    with TestClient(app) as client, engine.connect():  # the one connection, taken
        r = client.get(f"{API}/tickets", headers={"Authorization": "Bearer x"})
    assert r.status_code == 503 and r.headers["Retry-After"] == "5", r.text
    engine.dispose()


@pytest.mark.parametrize("where", ["token read", "ticket insert"])
def test_a_request_whose_connection_the_server_drops_answers_503_and_the_retry_works(
    pg_engine: Engine,
    tmp_path: Path,
    clock: FixedClock,
    monkeypatch: pytest.MonkeyPatch,
    where: str,
) -> None:
    """The server ends a request's connection under it (a restart, a failover). As it
    inserts the ticket (a statement the driver runs): the request answers 503 with
    Retry-After saying a write's outcome is unknown, not 500; the connection leaves the
    pool, and the retry is answered on a new one. As it reads the caller's token (a read
    that changes nothing, on a connection not pinged first): the read is made again on a
    new connection, and the request is answered as if nothing happened."""
    from monitor.api import deps
    from monitor.core.db import DriverReader
    from monitor.judging import new_tickets

    engine, app = served_on_postgresql(pg_engine, tmp_path, clock)
    dropped: list[int] = []

    def drop(pid: int) -> None:
        if not dropped:
            with pg_engine.begin() as conn:
                conn.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")
            dropped.append(pid)

    read_token, insert = deps.authenticate_token, new_tickets.insert_together

    def dropped_at_read(reader: DriverReader, value: str, now: datetime) -> Any:
        row = reader.first("SELECT pg_backend_pid()")
        assert row is not None
        drop(row[0])
        return read_token(reader, value, now)

    def dropped_at_insert(session: Any, parts: Any) -> Any:
        drop(session.connection().exec_driver_sql("SELECT pg_backend_pid()").scalar())
        return insert(session, parts)

    with TestClient(app) as client:
        headers = operator_headers(engine, clock)
        if where == "token read":
            monkeypatch.setattr(deps, "authenticate_token", dropped_at_read)
        else:
            monkeypatch.setattr(new_tickets, "insert_together", dropped_at_insert)
        r = client.post(f"{API}/tickets", json=ticket_body(), headers=headers)
        assert dropped
        if where == "token read":
            assert r.status_code == 201, r.text
        else:
            assert r.status_code == 503 and r.headers["Retry-After"] == "5", r.text
            assert "may or may not have been saved" in r.json()["detail"]
            r = client.post(f"{API}/tickets", json=ticket_body(), headers=headers)
            assert r.status_code == 201, r.text
    engine.dispose()


def test_a_write_waiting_too_long_inside_a_driver_statement_gets_503(
    pg_engine: Engine, tmp_path: Path, clock: FixedClock
) -> None:
    """Another transaction holds the running totals' rows (as an import does from its last
    chunk to its commit): a POST /tickets waits in the totals' upsert, a statement the
    driver runs, at most the busy timeout, then answers 503 "busy" (a lock timeout there was
    the driver's own error, a 500), writing nothing; once the rows are free it is written."""
    engine, app = served_on_postgresql(pg_engine, tmp_path, clock, busy_seconds=0.3)
    with TestClient(app) as client:
        headers = operator_headers(engine, clock)
        first = client.post(f"{API}/tickets", json=ticket_body(), headers=headers)
        assert first.status_code == 201, first.text
        second = ticket_body(external_id="EX-0002")
        with pg_engine.connect() as holder:
            holder.exec_driver_sql("SELECT * FROM metric_totals FOR UPDATE").all()
            r = client.post(f"{API}/tickets", json=second, headers=headers)
            assert r.status_code == 503 and r.headers["Retry-After"] == "5", r.text
            assert "busy" in r.json()["detail"]
            holder.rollback()
        assert client.get(f"{API}/tickets", headers=headers).json()["total"] == 1
        r = client.post(f"{API}/tickets", json=second, headers=headers)
        assert r.status_code == 201, r.text
    engine.dispose()
