"""Idempotency-Key on writes: a retry replays the first answer and writes nothing twice.

The key is claimed in the same transaction as the write it guards and committed with it, so
no timeout can let a second writer in: a retry that arrives while the first request is still
running waits for it (PostgreSQL blocks on the uncommitted key row; SQLite has one writer at
a time) and then replays its answer.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlmodel import Session

from monitor.api.models import IdempotencyKey
from monitor.core.db import limit_lock_waits, session_scope
from monitor.core.errors import IdempotencyMismatch

DONE = "done"
MAX_KEY = 255


@dataclass
class Answer:
    status_code: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)

    def response(self, replayed: bool = False) -> JSONResponse:
        headers = dict(self.headers)
        if replayed:
            headers["Idempotent-Replayed"] = "true"
        return JSONResponse(self.body, status_code=self.status_code, headers=headers)


class Replay(Exception):
    """The key was used before for this very request: give its answer again."""

    def __init__(self, answer: Answer) -> None:
        super().__init__("replay")
        self.answer = answer


async def fingerprint(request: Request) -> str:
    """What makes two requests the same: method, path and body (uploaded files by digest, a
    JSON body by its content)."""
    # The scope's path is what `request.url.path` says, without building the whole URL (a
    # twentieth of a write request's time).
    digest = hashlib.sha256(f"{request.method} {request.scope['path']}\n".encode())
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form()
        for name, value in sorted(form.multi_items(), key=lambda item: item[0]):
            digest.update(f"{name}=".encode())
            if isinstance(value, str):
                digest.update(value.encode("utf-8", "surrogatepass"))
            else:
                digest.update(f"{value.filename}:".encode("utf-8", "surrogatepass"))
                while chunk := await value.read(1024 * 1024):
                    digest.update(chunk)
                await value.seek(0)
            digest.update(b"\n")
    else:
        digest.update(await _content(request))
    return digest.hexdigest()


async def _content(request: Request) -> bytes:
    """A JSON body as its content (keys sorted, one spelling of each string and number), so
    that a retry whose client serialised the same request anew (other spacing, key order,
    escapes) is the same request; any other body as it came. (The request keeps the JSON
    FastAPI parsed for the route: it is not parsed again.)"""
    try:
        data = await request.json()
    except (ValueError, RecursionError):  # not JSON (a UnicodeDecodeError is a ValueError)
        return await request.body()
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Claim:
    """A key this transaction holds; `finish` stores the answer beside the write."""

    principal: str
    key: str

    def finish(self, session: Session, answer: Answer) -> None:
        row = session.get(IdempotencyKey, (self.principal, self.key))
        assert row is not None
        row.state, row.status_code = DONE, answer.status_code
        row.response, row.headers = answer.body, answer.headers
        session.add(row)


def _insert_if_absent(session: Session, values: dict[str, Any]) -> None:
    dialect = session.get_bind().dialect.name
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(IdempotencyKey)
    session.execute(insert.values(**values).on_conflict_do_nothing())


def claim(
    session: Session, principal: str, key: str | None, request_hash: str, now: datetime
) -> Claim | None:
    """Hold `key` for this transaction, or raise Replay with the answer it already has."""
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_KEY:
        raise IdempotencyMismatch(f"Idempotency-Key must be 1 to {MAX_KEY} characters")
    _insert_if_absent(
        session,
        {
            "principal": principal,
            "key": key,
            "request_hash": request_hash,
            "state": "in_flight",
            "locked_at": now,
        },
    )
    row = session.get(IdempotencyKey, (principal, key), with_for_update=True)
    assert row is not None
    if row.request_hash != request_hash:
        raise IdempotencyMismatch("this Idempotency-Key was used for a different request")
    if row.state == DONE:
        raise Replay(Answer(row.status_code or 200, row.response, row.headers or {}))
    # Ours, or one left in flight by a request that died before this design: take it over.
    row.locked_at = now
    session.add(row)
    return Claim(principal, key)


def remember_refusal(
    engine: Engine, principal: str, key: str, request_hash: str, answer: Answer, now: datetime
) -> None:
    """Keep a refused request's answer, so a retry is refused the same way."""
    with session_scope(engine) as session:
        limit_lock_waits(session)
        _insert_if_absent(
            session,
            {
                "principal": principal,
                "key": key,
                "request_hash": request_hash,
                "state": DONE,
                "locked_at": now,
                "status_code": answer.status_code,
                "response": answer.body,
                "headers": answer.headers,
            },
        )
