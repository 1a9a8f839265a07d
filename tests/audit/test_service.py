"""The audit log is a hash chain: a changed record is named."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from monitor.audit.service import Entry, append, append_many
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
