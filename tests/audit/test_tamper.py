"""Someone with database access changes what decides the score: `audit verify` names the row.

Each tamper is done on the demo year, as the database owner with the guards switched off,
inside a transaction that is rolled back afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, col, select

from monitor.audit.verify import verify
from monitor.breaches.models import Breach
from monitor.core.db import make_engine
from monitor.demo.data import load_demo
from monitor.judging.flow import write_flow
from monitor.sla.service import SlaContext
from monitor.tickets.models import Event, Ticket
from tests.conftest import APP_URL, PG_URL
from tests.helpers import review


@contextmanager
def owner(engine: Engine) -> Iterator[Connection]:
    """A transaction as the owner with triggers off; everything is rolled back after."""
    if engine.dialect.name == "postgresql":
        engine = make_engine(PG_URL)
    with engine.connect() as conn:
        trans = conn.begin()
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
        else:
            names = conn.execute(sa.text("SELECT name FROM sqlite_master WHERE type='trigger'"))
            for (name,) in names.all():
                conn.execute(sa.text(f"DROP TRIGGER {name}"))
        try:
            yield conn
        finally:
            trans.rollback()


def test_every_kind_of_tamper_is_named(engine: Engine, session: Session, ctx: SlaContext) -> None:
    with write_flow(session, ctx) as flow:
        load_demo(flow)
    session.commit()
    major = session.exec(
        select(Ticket).where(Ticket.severity == "major").order_by(Ticket.id)  # type: ignore[arg-type]
    ).first()
    assert major is not None and major.id is not None
    late = session.exec(select(Breach).order_by(Breach.id)).first()  # type: ignore[arg-type]
    assert late is not None
    reviewed = session.exec(select(Breach).order_by(Breach.id.desc())).first()  # type: ignore[union-attr]
    assert reviewed is not None and reviewed.id != late.id
    review(session, ctx, reviewed, "confirmed", "", "监理-张工")
    event = session.exec(
        select(Event).where(Event.ticket_id == major.id).order_by(col(Event.seq))
    ).first()
    assert event is not None
    assert verify(session).ok
    major_id, late_id, reviewed_id, event_id = major.id, late.id, reviewed.id, event.id
    session.close()

    tampers = {
        f"UPDATE tickets SET severity = 'general', current_severity = 'general' "
        f"WHERE id = {major_id}": f"ticket {major_id} was changed after it was created (severity",
        f"UPDATE tickets SET created_at = '2099-01-01 00:00:00' WHERE id = {major_id}": (
            f"ticket {major_id} was changed after it was created (created_at"
        ),
        f"UPDATE tickets SET status = CASE status WHEN 'open' THEN 'closed' ELSE 'open' END "
        f"WHERE id = {major_id}": (f"ticket {major_id} disagrees with its own events (status"),
        f"UPDATE events SET actor = 'supervisor-x' WHERE id = {event_id}": "(actor:",
        f"UPDATE events SET actor_role = 'supervisor' WHERE id = {event_id}": "(role:",
        f"UPDATE events SET source = 'supervisor' WHERE id = {event_id}": "(source:",
        f"UPDATE events SET client_id = 'forged' WHERE id = {event_id}": "(event_id:",
        f"DELETE FROM events WHERE id = {event_id}": "was deleted",
        f"UPDATE breaches SET review = 'waived' WHERE id = {late_id}": (
            f"breach {late_id} shows review waived but its reviews say pending"
        ),
        f"DELETE FROM breach_reviews WHERE breach_id = {reviewed_id}": "was deleted",
        f"DELETE FROM breaches WHERE id = {late_id}": f"breach {late_id} was deleted",
        "UPDATE audit_log SET actor = 'mallory' WHERE seq = 3": "does not match its hash",
        "DELETE FROM audit_log WHERE seq = 5": "record 5 is missing",
    }
    for statement, named in tampers.items():
        with owner(engine) as conn:
            changed = conn.execute(sa.text(statement)).rowcount
            assert changed, f"nothing to tamper with: {statement}"
            result = verify(Session(bind=conn))
        assert not result.ok, f"not noticed: {statement}"
        assert named in (result.reason or ""), f"{statement}: {result.reason}"


@pytest.mark.parametrize("table", ["audit_log", "events", "breach_reviews", "tickets"])
def test_the_app_role_cannot_truncate_or_switch_the_guards_off(
    pg_engine: Engine, table: str
) -> None:
    """PostgreSQL only: SQLite has no roles, and one file owner."""
    engine = make_engine(APP_URL)
    with pytest.raises(sa.exc.DatabaseError, match="permission denied"), engine.begin() as c:
        c.execute(sa.text(f"TRUNCATE {table} CASCADE"))
    with pytest.raises(sa.exc.DatabaseError, match="permission denied"), engine.begin() as c:
        c.execute(sa.text("SET session_replication_role = replica"))
    with pytest.raises(sa.exc.DatabaseError, match=r"owner|permission denied"), engine.begin() as c:
        c.execute(sa.text(f"ALTER TABLE {table} DISABLE TRIGGER ALL"))
    # Even the owner's TRUNCATE is refused while the guards are on.
    with (
        pytest.raises(sa.exc.DatabaseError, match=r"append-only|refused"),
        make_engine(PG_URL).begin() as c,
    ):
        c.execute(sa.text(f"TRUNCATE {table} CASCADE"))


def test_a_tickets_facts_cannot_be_updated(
    session: Session, ctx: SlaContext, engine: Engine
) -> None:
    with write_flow(session, ctx) as flow:
        load_demo(flow)
    session.commit()
    with pytest.raises(sa.exc.DatabaseError, match=r"refused|append-only"), engine.begin() as c:
        c.execute(sa.text("UPDATE tickets SET severity = 'general' WHERE id = 1"))
