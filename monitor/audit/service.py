"""Appending to and verifying the hash-chained audit log."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlmodel import Session, col, select

from monitor.audit.models import AuditRecord
from monitor.core.batch import JsonText, driver_rows, insert_rows
from monitor.core.timeutil import utc

GENESIS = "0" * 64
# Any constant: on PostgreSQL this advisory lock serializes appends to the chain.
CHAIN_LOCK = 0x5_1A_A0D17


# One encoder for every record: `json.dumps` with these arguments builds a new one each call,
# a quarter of its time on an audit payload.
_CANONICAL = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def canonical(record: dict[str, Any]) -> str:
    """The record's JSON as the chain hashes it: keys sorted, no spaces, text as written."""
    return _CANONICAL.encode(record)


# A string as `canonical` writes it (json's own C function for ensure_ascii=False).
_text = json.encoder.encode_basestring


def record_hash(
    prev_hash: str,
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    entity: str,
    entity_id: str,
    payload: dict[str, Any],
    *,
    payload_text: str | None = None,
) -> str:
    """SHA-256 over the previous hash, a newline and `canonical` of the whole record. The
    record's keys are written out in sorted order around the payload's canonical text
    (`payload_text`, when the caller has it) instead of serializing the payload again."""
    text = canonical(payload) if payload_text is None else payload_text
    return chain_hash(prev_hash, record_head(at, actor, action, entity, entity_id), text, seq)


def record_head(at: datetime, actor: str, action: str, entity: str, entity_id: str) -> str:
    """The record's canonical text up to its payload (the keys after it, its payload and its
    seq, its place in the chain known only as it is appended): made ahead by an import's
    worker processes."""
    return (
        f'{{"action":{_text(action)},"actor":{_text(actor)},"at":{_text(at.isoformat())},'
        f'"entity":{_text(entity)},"entity_id":{_text(entity_id)},"payload":'
    )


def chain_hash(prev_hash: str, head: str, payload_text: str, seq: int) -> str:
    """A record's hash: of the previous hash, a newline and its canonical text."""
    text = f'{prev_hash}\n{head}{payload_text},"seq":{int(seq)}}}'
    return hashlib.sha256(text.encode()).hexdigest()


class Entry(NamedTuple):
    """One record to append; its place in the chain (seq, hashes) is given on appending. The
    payload is JSON with string keys (its canonical text is what the record's hash covers,
    and what `verify_chain` recomputes from the stored payload). A named tuple: an import
    makes six a ticket, and a frozen dataclass cost twice as much to make. The payload may
    come as its canonical text already (`JsonText`), and with it the record's `head`, as an
    import's worker processes make them (not the whole text before its seq, which sent the
    payload to the writer twice: 113 MB pickled for 20,000 tickets, 85 MB with the head)."""

    at: datetime
    actor: str
    action: str
    entity: str
    entity_id: str | int
    payload: dict[str, Any] | JsonText
    head: str | None = None  # `record_head`, when made ahead (the payload's text then)


_HEAD = "audit.head"  # session.info: (transaction, seq, hash) of the chain's head


def _head_for_append(session: Session) -> tuple[int, str]:
    """The chain's head, under the chain lock: read once per transaction, then carried
    forward by this transaction's own appends (the lock keeps everyone else out meanwhile)."""
    transaction = session.get_transaction()
    cached = session.info.get(_HEAD)
    if cached is not None and cached[0] is transaction and not session.in_nested_transaction():
        return cached[1], cached[2]
    postgres = session.get_bind().dialect.name == "postgresql"
    rows = driver_rows(session, _LOCKED_HEAD if postgres else _HEAD_ROW)  # nothing to flush
    return (rows[0][0], rows[0][1]) if rows else (0, GENESIS)


_LOG: sa.Table = AuditRecord.__table__  # type: ignore[attr-defined]
_HEAD_ROW = "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1"
# PostgreSQL: the chain's lock, then its head read afresh, in one round trip (migration
# a8e4c2d6f913).
_LOCKED_HEAD = f"SELECT seq, hash FROM slamon_chain_head({CHAIN_LOCK})"


_PENDING = "audit.pending"  # session.info: (transaction, entries) not yet in the chain
# A large write (an import) hashes and inserts what it has gathered once it holds this many.
PENDING_LIMIT = 5000


def append_many(session: Session, entries: list[Entry]) -> None:
    """Add records to the chain, in order, as part of the caller's transaction. They are
    gathered and go in when the transaction commits (or when it reads the log here):
    only then is the chain locked, its head read once, each record hashed over the one before
    it and all of them inserted with one statement. So a writer holds the chain for its last
    moments instead of for all its judging, and writers on several servers overlap."""
    if not entries:
        return
    if session.in_nested_transaction():  # a savepoint may roll back: in the chain at once
        flush(session)
        _insert(session, entries)
        session.info.pop(_HEAD, None)
        return
    if session.get_transaction() is None:
        session.connection()  # begins the transaction these records belong to
    transaction = session.get_transaction()
    pending: tuple[object, list[Entry]] | None = session.info.get(_PENDING)
    if pending is None or pending[0] is not transaction:  # (a rolled-back one's are void)
        pending = session.info[_PENDING] = (transaction, [])
    pending[1].extend(entries)
    if len(pending[1]) >= PENDING_LIMIT:
        flush(session)


def flush(session: Session) -> None:
    """Put the records this transaction gathered into the chain now."""
    pending = session.info.pop(_PENDING, None)
    if pending is None or pending[0] is not session.get_transaction() or not pending[1]:
        return
    seq, prev = _insert(session, pending[1])
    session.info[_HEAD] = (session.get_transaction(), seq, prev)


def _insert(session: Session, entries: list[Entry]) -> tuple[int, str]:
    seq, prev = _head_for_append(session)
    rows = []
    for e in entries:
        seq += 1
        # Stored as the very text hashed; `verify` reads it back and writes it out again.
        payload = e.payload
        text = payload if isinstance(payload, JsonText) else JsonText(canonical(payload))
        at, entity_id = utc(e.at), str(e.entity_id)
        head = e.head or record_head(at, e.actor, e.action, e.entity, entity_id)
        digest = chain_hash(prev, head, text, seq)
        rows.append(
            {
                "seq": seq,
                "at": at,
                "actor": e.actor,
                "action": e.action,
                "entity": e.entity,
                "entity_id": entity_id,
                "payload": text,
                "prev_hash": prev,
                "hash": digest,
            }
        )
        prev = digest
    insert_rows(session, AuditRecord.__table__, rows)  # type: ignore[attr-defined]
    return seq, prev


@sa.event.listens_for(Session, "before_commit")
def _on_commit(session: Session) -> None:
    if not session.in_nested_transaction():
        flush(session)


def append(
    session: Session,
    *,
    at: datetime,
    actor: str,
    action: str,
    entity: str,
    entity_id: str | int,
    payload: dict[str, Any],
) -> None:
    """Add one record at the head of the chain, inside the caller's transaction."""
    append_many(session, [Entry(at, actor, action, entity, entity_id, payload)])


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
    flush(session)  # what this transaction gathered is part of the log it reads
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
    flush(session)
    return session.exec(select(AuditRecord).order_by(col(AuditRecord.seq).desc()).limit(1)).first()


@dataclass
class Audited:
    """What the chain says about the rows it covers: (audit seq, actor, at, payload) each."""

    tickets: dict[str, tuple[int, str, datetime, dict[str, Any]]]
    events: dict[tuple[str, int], tuple[int, str, datetime, dict[str, Any]]]
    reviews: dict[int, tuple[int, str, datetime, dict[str, Any]]]
    breaches: dict[str, tuple[int, str, datetime, dict[str, Any]]]


def verify_chain(
    session: Session, checkpoint: tuple[int, str] | None = None
) -> tuple[VerifyResult, Audited]:
    """Recompute the hash chain; name the first record that does not verify. Also returns
    what the records say about tickets, events, breaches and reviews, for the table checks."""
    prev, expected_seq, checked = GENESIS, 1, 0
    audited = Audited({}, {}, {}, {})
    seen_checkpoint = checkpoint is None
    for rec in _records(session):
        if rec.seq != expected_seq:
            return VerifyResult(checked, expected_seq, f"record {expected_seq} is missing"), audited
        if rec.prev_hash != prev:
            return VerifyResult(
                checked, rec.seq, "its previous-hash does not match the record before it"
            ), audited
        computed = record_hash(
            prev, rec.seq, rec.at, rec.actor, rec.action, rec.entity, rec.entity_id, rec.payload
        )
        if computed != rec.hash:
            return VerifyResult(checked, rec.seq, "its content does not match its hash"), audited
        if checkpoint is not None and rec.seq == checkpoint[0]:
            if rec.hash != checkpoint[1]:
                return VerifyResult(
                    checked,
                    rec.seq,
                    "it is not the record of the checkpoint: the log was rewritten since",
                ), audited
            seen_checkpoint = True
        entry = (rec.seq, rec.actor, rec.at, rec.payload)
        if rec.action == "ticket.created":
            audited.tickets[rec.entity_id] = entry
        elif rec.action == "event.recorded":
            audited.events[(rec.entity_id, int(rec.payload["seq"]))] = entry
        elif rec.action == "breach.reviewed" and "review" in rec.payload:
            audited.reviews[int(rec.payload["review"])] = entry
        elif rec.action == "breach.detected":
            audited.breaches[rec.entity_id] = entry
        prev, expected_seq, checked = rec.hash, expected_seq + 1, checked + 1
    if not seen_checkpoint:
        assert checkpoint is not None
        return VerifyResult(
            checked, checkpoint[0], "the checkpoint's record is gone: the log was truncated since"
        ), audited
    return VerifyResult(checked, None, None), audited
