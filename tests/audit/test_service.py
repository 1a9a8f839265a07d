"""The audit log is a hash chain: a changed record is named."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from monitor.audit.service import append
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
