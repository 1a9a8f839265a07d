"""Idempotency-Key on writes: a retry replays the first answer and writes nothing twice."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from fastapi.responses import JSONResponse
from sqlalchemy.engine import Engine
from sqlmodel import Session

from monitor.auth.models import IdempotencyKey
from monitor.auth.service import Principal
from monitor.core.clock import Clock
from monitor.core.db import session_scope
from monitor.core.errors import DomainError, IdempotencyInFlight, IdempotencyMismatch

# An in-flight key older than this belongs to a request that died; a retry may take it over.
STALE = timedelta(seconds=60)


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


def fingerprint(method: str, path: str, body: Any) -> str:
    text = json.dumps([method, path, body], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def run(
    engine: Engine,
    clock: Clock,
    who: Principal,
    key: str | None,
    request_hash: str,
    work: Callable[[Session], Answer],
) -> JSONResponse:
    """Do `work` in one transaction, at most once per (caller, key)."""
    if key is None:
        with session_scope(engine) as session:
            return work(session).response()
    if not 1 <= len(key) <= 255:
        raise IdempotencyMismatch("Idempotency-Key must be 1 to 255 characters")
    ident = (who.key, key)
    try:
        with session_scope(engine) as session:
            row = session.get(IdempotencyKey, ident)
            now = clock.now()
            if row is None:
                session.add(
                    IdempotencyKey(
                        principal=who.key,
                        key=key,
                        request_hash=request_hash,
                        state="in_flight",
                        locked_at=now,
                    )
                )
            elif row.request_hash != request_hash:
                raise IdempotencyMismatch("this Idempotency-Key was used for a different request")
            elif row.state == "done":
                return Answer(row.status_code or 200, row.response, row.headers or {}).response(
                    replayed=True
                )
            elif now - row.locked_at < STALE:
                raise IdempotencyInFlight("a request with this Idempotency-Key is in progress")
            else:
                row.locked_at = now
                session.add(row)
    except sa.exc.IntegrityError:
        raise IdempotencyInFlight("a request with this Idempotency-Key is in progress") from None
    try:
        with session_scope(engine) as session:
            answer = work(session)
            _finish(session, ident, answer)
        return answer.response()
    except DomainError as exc:
        from monitor.api.errors import error_body

        with session_scope(engine) as session:
            _finish(session, ident, Answer(exc.status, error_body(exc)))
        raise
    except BaseException:
        with session_scope(engine) as session:
            row = session.get(IdempotencyKey, ident)
            if row is not None:
                session.delete(row)
        raise


def _finish(session: Session, ident: tuple[str, str], answer: Answer) -> None:
    row = session.get(IdempotencyKey, ident)
    assert row is not None
    row.state, row.status_code = "done", answer.status_code
    row.response, row.headers = answer.body, answer.headers
    session.add(row)
