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
    """`bad_seq` names the audit record concerned (0 when a row has none)."""

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


def head(session: Session) -> AuditRecord | None:
    return session.exec(select(AuditRecord).order_by(col(AuditRecord.seq).desc()).limit(1)).first()


def verify(session: Session, checkpoint: tuple[int, str] | None = None) -> VerifyResult:
    """Recompute the chain, then check the append-only tables against it; name the first
    record that does not verify."""
    prev, expected_seq, checked = GENESIS, 1, 0
    events: dict[tuple[str, int], tuple[int, dict[str, Any]]] = {}
    reviews: dict[int, tuple[int, dict[str, Any]]] = {}
    seen_checkpoint = checkpoint is None
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
        if checkpoint is not None and rec.seq == checkpoint[0]:
            if rec.hash != checkpoint[1]:
                return VerifyResult(
                    checked,
                    rec.seq,
                    "it is not the record of the checkpoint: the log was rewritten since",
                )
            seen_checkpoint = True
        if rec.action == "event.recorded":
            events[(rec.entity_id, int(rec.payload["seq"]))] = (rec.seq, rec.payload)
        elif rec.action == "breach.reviewed" and "review" in rec.payload:
            reviews[int(rec.payload["review"])] = (rec.seq, rec.payload)
        prev, expected_seq, checked = rec.hash, expected_seq + 1, checked + 1
    if not seen_checkpoint:
        assert checkpoint is not None
        return VerifyResult(
            checked, checkpoint[0], "the checkpoint's record is gone: the log was truncated since"
        )
    problem = _check_events(session, events) or _check_reviews(session, reviews)
    if problem is not None:
        return VerifyResult(checked, problem[0], problem[1])
    return VerifyResult(checked, None, None)


def _check_events(
    session: Session, audited: dict[tuple[str, int], tuple[int, dict[str, Any]]]
) -> tuple[int, str] | None:
    """Every stored event must be exactly as its audit record says, and none may be missing."""
    from monitor.tickets.models import Event

    by_id: dict[int, Event] = {}
    rows = session.exec(select(Event).order_by(col(Event.id))).all()
    for e in rows:
        assert e.id is not None
        by_id[e.id] = e
    found = set()
    for e in rows:
        key = (str(e.ticket_id), e.seq)
        if key not in audited:
            return 0, f"event #{e.seq} of ticket {e.ticket_id} is not in the audit log"
        seq, payload = audited[key]
        found.add(key)
        corrected = by_id.get(e.corrects_id) if e.corrects_id else None
        stored: dict[str, Any] = {
            "type": e.type,
            "at": e.occurred_at,
            "recorded_at": e.recorded_at,
            "severity": e.severity,
            "corrects": corrected.seq if corrected else None,
            "reason": e.reason,
            "note": e.note,
            "evidence": e.evidence,
        }
        for name, value in stored.items():
            claimed = payload.get(name)
            if isinstance(value, datetime) and claimed is not None:
                claimed = datetime.fromisoformat(claimed)
            if name in payload and claimed != value:
                return seq, (
                    f"event #{e.seq} of ticket {e.ticket_id} was changed after it was "
                    f"recorded ({name}: audit says {payload[name]!r}, table has "
                    f"{value!s})"
                )
    for key, (seq, _) in audited.items():
        if key not in found:
            return seq, f"event #{key[1]} of ticket {key[0]} was deleted"
    return None


def _check_reviews(
    session: Session, audited: dict[int, tuple[int, dict[str, Any]]]
) -> tuple[int, str] | None:
    from monitor.breaches.models import BreachReview

    rows = {r.id or 0: r for r in session.exec(select(BreachReview)).all()}
    for review_id, (seq, payload) in audited.items():
        row = rows.get(review_id)
        if row is None:
            return seq, f"review {review_id} was deleted"
        if (row.decision, row.reason) != (payload["decision"], payload["reason"]):
            return seq, f"review {review_id} was changed after it was recorded"
    for review_id in rows:
        if review_id not in audited:
            return 0, f"review {review_id} is not in the audit log"
    return None
