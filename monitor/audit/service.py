"""Appending to and verifying the hash-chained audit log."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from monitor.audit.models import AuditRecord
from monitor.core.timeutil import utc

GENESIS = "0" * 64
# Any constant: on PostgreSQL this advisory lock serializes appends to the chain.
CHAIN_LOCK = 0x5_1A_A0D17


def canonical(record: dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def record_hash(
    prev_hash: str,
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    entity: str,
    entity_id: str,
    payload: dict[str, Any],
) -> str:
    body = canonical(
        {
            "seq": seq,
            "at": at.isoformat(),
            "actor": actor,
            "action": action,
            "entity": entity,
            "entity_id": entity_id,
            "payload": payload,
        }
    )
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


def append(
    session: Session,
    *,
    at: datetime,
    actor: str,
    action: str,
    entity: str,
    entity_id: str | int,
    payload: dict[str, Any],
) -> AuditRecord:
    """Add one record at the head of the chain, inside the caller's transaction."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": CHAIN_LOCK})
    head = session.exec(select(AuditRecord).order_by(col(AuditRecord.seq).desc()).limit(1)).first()
    seq = head.seq + 1 if head else 1
    prev = head.hash if head else GENESIS
    payload = json.loads(canonical(payload))  # exactly what the database will hand back
    at = utc(at)
    record = AuditRecord(
        seq=seq,
        at=at,
        actor=actor,
        action=action,
        entity=entity,
        entity_id=str(entity_id),
        payload=payload,
        prev_hash=prev,
        hash=record_hash(prev, seq, at, actor, action, entity, str(entity_id), payload),
    )
    session.add(record)
    session.flush()
    return record


@dataclass(frozen=True)
class VerifyResult:
    checked: int
    bad_seq: int | None
    reason: str | None

    @property
    def ok(self) -> bool:
        return self.bad_seq is None


def _records(session: Session, batch: int = 5000) -> Iterator[AuditRecord]:
    last = 0
    while True:
        rows = session.exec(
            select(AuditRecord)
            .where(col(AuditRecord.seq) > last)
            .order_by(col(AuditRecord.seq))
            .limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].seq


def verify(session: Session) -> VerifyResult:
    """Recompute the chain; name the first record that does not verify."""
    prev, expected_seq, checked = GENESIS, 1, 0
    for rec in _records(session):
        if rec.seq != expected_seq:
            return VerifyResult(checked, expected_seq, f"record {expected_seq} is missing")
        if rec.prev_hash != prev:
            return VerifyResult(
                checked, rec.seq, "its previous-hash does not match the record before it"
            )
        computed = record_hash(
            prev, rec.seq, rec.at, rec.actor, rec.action, rec.entity, rec.entity_id, rec.payload
        )
        if computed != rec.hash:
            return VerifyResult(checked, rec.seq, "its content does not match its hash")
        prev, expected_seq, checked = rec.hash, expected_seq + 1, checked + 1
    return VerifyResult(checked, None, None)
