"""The audit log is a hash chain: a changed record is named."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine
from sqlmodel import Session

from monitor.audit.service import Entry, append, append_many, flush, record_hash
from monitor.audit.verify import verify
from tests.helpers import tamper


def test_audit_chain_verifies_and_names_a_tampered_record(engine: Engine, session: Session) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(3):
        append(
            session,
            at=now,
            actor="t",
            action="test",
            entity="x",
            entity_id=i,
            payload={"n": i, "text": "重大故障"},
        )
    session.commit()
    assert verify(session).ok and verify(session).checked == 3
    session.rollback()
    with (
        pytest.raises(sa.exc.DatabaseError, match=r"append-only|permission denied"),
        engine.begin() as conn,
    ):
        conn.execute(sa.text("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2"))
    tamper(engine, "UPDATE audit_log SET actor = 'mallory' WHERE seq = 2")
    result = verify(session)
    assert result.bad_seq == 2 and not result.ok


def test_a_batched_append_keeps_the_chain_and_tampering_inside_it_is_named(
    engine: Engine, session: Session
) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    append(session, at=now, actor="t", action="one", entity="x", entity_id=0, payload={})
    batch = [Entry(now, "t", "batch", "x", i, {"n": i, "text": "到场"}) for i in range(1, 6)]
    append_many(session, batch)  # after a single append in the same transaction
    append_many(session, batch[:2])  # and another batch on top of it
    session.commit()
    append(session, at=now, actor="t", action="next", entity="x", entity_id=9, payload={})
    session.commit()  # a new transaction reads the head again
    result = verify(session)
    assert result.ok and result.checked == 9
    seqs = session.execute(sa.text("SELECT seq, action FROM audit_log ORDER BY seq")).all()
    assert [tuple(r) for r in seqs][:3] == [(1, "one"), (2, "batch"), (3, "batch")]
    session.rollback()
    tamper(engine, "UPDATE audit_log SET payload = '{\"n\": 7}' WHERE seq = 4")
    assert verify(session).bad_seq == 4


def test_a_rolled_back_write_leaves_no_gap_in_the_chain(engine: Engine, session: Session) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    append_many(session, [Entry(now, "t", "kept", "x", 1, {})])
    session.commit()
    append_many(session, [Entry(now, "t", "lost", "x", i, {}) for i in range(3)])
    session.rollback()
    append_many(session, [Entry(now, "t", "kept", "x", 2, {})])
    session.commit()
    result = verify(session)
    assert result.ok and result.checked == 2


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


def test_a_writer_waiting_for_the_chain_appends_after_the_one_it_waited_for(
    engine: Engine, session: Session
) -> None:
    """The chain's head is read once its lock is had: a writer that waited for another reads
    the head the other committed, not the one it would have seen before waiting."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    append(session, at=now, actor="t", action="start", entity="x", entity_id=0, payload={})
    session.commit()
    first, second = Session(engine), Session(engine)
    append_many(first, [Entry(now, "a", "first", "x", 1, {})])
    flush(first)  # in the chain, holding it until it commits
    outcome: list[str] = []

    def write() -> None:
        try:
            append_many(second, [Entry(now, "b", "second", "x", 2, {})])
            second.commit()  # waits for the chain
            outcome.append("written")
        except Exception as exc:  # what the test is about: reported, not raised
            outcome.append(repr(exc))
        finally:
            second.close()

    waiting = threading.Thread(target=write)
    waiting.start()
    time.sleep(0.5)  # it reaches the chain's lock (SQLite: the write lock) and waits
    first.commit()
    first.close()
    waiting.join(30)
    assert outcome == ["written"]
    result = verify(session)
    assert result.ok and result.checked == 3
    actions = session.execute(sa.text("SELECT action FROM audit_log ORDER BY seq")).scalars()
    assert list(actions) == ["start", "first", "second"]


@settings(max_examples=300, deadline=None)
@given(
    seq=st.integers(1, 10**9),
    names=st.lists(st.text(), min_size=4, max_size=4),
    payload=st.dictionaries(st.text(), _JSON, max_size=5),
    at=st.datetimes(timezones=st.just(UTC)),
)
def test_a_record_hash_is_sha256_over_the_canonical_record(
    seq: int, names: list[str], payload: dict[str, Any], at: datetime
) -> None:
    # The hash writes the record's canonical text out key by key (instead of serializing the
    # payload twice); anyone re-checking the chain with the documented formula gets the same.
    actor, action, entity, entity_id = names
    record = {
        "seq": seq,
        "at": at.isoformat(),
        "actor": actor,
        "action": action,
        "entity": entity,
        "entity_id": entity_id,
        "payload": payload,
    }
    text = json.dumps(record, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    expected = hashlib.sha256(f"prev\n{text}".encode()).hexdigest()
    assert record_hash("prev", seq, at, actor, action, entity, entity_id, payload) == expected
