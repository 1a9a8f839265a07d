"""Policy files: refused at start with the path of the bad field; versions never rewritten."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from monitor.audit.models import AuditRecord
from monitor.core.clock import FixedClock
from monitor.core.db import read_scope, session_scope
from monitor.core.errors import ConfigError
from monitor.core.settings import Settings
from monitor.sla.models import PolicyVersion
from monitor.sla.service import ContextCache, SlaContext, load_context
from tests.conftest import CONFIG
from tests.helpers import make_ticket


def config_copy(tmp_path: Path, sla: str) -> Path:
    folder = tmp_path / "config"
    shutil.copytree(CONFIG, folder)
    (folder / "sla.yaml").write_text(sla, encoding="utf-8")
    return folder


@pytest.mark.parametrize(
    ("edit", "path"),
    [
        (
            ("duration: 30m", "duration: half an hour"),
            "policies[0].severities.major.targets[0].duration",
        ),
        (("stop: arrived", "stop: teleported"), "policies[0].severities.major.targets[0].stop"),
        (
            ("duration: 3d, calendar: cn_workdays", "duration: 72h, calendar: cn_workdays"),
            "policies[0].severities.major.targets[2]",
        ),
        (
            (
                "warn_at: 0.8, pausable: false}\n      significant",
                "warn_at: 1.5, pausable: false}\n      significant",
            ),
            "policies[0].severities.major.targets[2].warn_at",
        ),
    ],
)
def test_a_bad_policy_file_is_refused_with_the_path_of_the_bad_field(
    session: Session, clock: FixedClock, tmp_path: Path, edit: tuple[str, str], path: str
) -> None:
    text = (CONFIG / "sla.yaml").read_text(encoding="utf-8")
    assert edit[0] in text
    folder = config_copy(tmp_path, text.replace(edit[0], edit[1], 1))
    with pytest.raises(ConfigError) as exc:
        load_context(session, Settings(config_dir=folder), clock)
    assert path in str(exc.value)
    assert "sla.yaml" in str(exc.value)


def test_a_used_policy_version_cannot_be_edited_in_place(
    session: Session, ctx: SlaContext, settings: Settings, clock: FixedClock, tmp_path: Path
) -> None:
    make_ticket(session, ctx, [("reported", "2022-08-10T11:41:00+08:00")])
    text = (CONFIG / "sla.yaml").read_text(encoding="utf-8").replace("duration: 2h", "duration: 3h")
    folder = config_copy(tmp_path, text)
    with pytest.raises(ConfigError, match="add a new version"):
        load_context(session, settings.model_copy(update={"config_dir": folder}), clock)


def test_a_new_version_applies_only_to_tickets_reported_after_it(
    session: Session, ctx: SlaContext, settings: Settings, clock: FixedClock, tmp_path: Path
) -> None:
    old = make_ticket(
        session,
        ctx,
        [("reported", "2024-03-01T09:00:00+08:00"), ("resolved", "2024-03-01T11:30:00+08:00")],
    )
    text = (CONFIG / "sla.yaml").read_text(encoding="utf-8")
    body = text.split("policies:\n", 1)[1]
    newer = (
        body.replace("contract-2019", "contract-2025")
        .replace("effective_from: 2019-01-01", "effective_from: 2025-01-01")
        .replace("duration: 2h", "duration: 3h")
    )
    folder = config_copy(tmp_path, "policies:\n" + body + newer)
    ctx2 = load_context(session, settings.model_copy(update={"config_dir": folder}), clock)
    new = make_ticket(
        session,
        ctx2,
        [("reported", "2025-03-01T09:00:00+08:00"), ("resolved", "2025-03-01T11:30:00+08:00")],
        external_id="EX-2",
    )
    assert old.policy_version == "contract-2019"
    assert new.policy_version == "contract-2025"
    from monitor.tickets.service import ticket_out

    assert ticket_out(session, ctx2, old).targets[1].status == "breached"
    assert ticket_out(session, ctx2, new).targets[1].status == "met"


def test_a_read_stores_no_policy_and_the_first_writer_does(
    engine: Engine, settings: Settings, clock: FixedClock
) -> None:
    # A server's context cache is first filled at start by a writer; a read that finds it
    # empty must neither write (PostgreSQL's reads are READ ONLY) nor keep what it read.
    cache = ContextCache(settings, clock)
    with read_scope(engine) as session:
        ctx = cache.get(session)
        assert "contract-2019" in ctx.policies.by_version
    with read_scope(engine) as session:
        assert session.exec(select(PolicyVersion)).all() == []
    with session_scope(engine) as session:
        kept = cache.get(session)
    with read_scope(engine) as session:
        stored = [p.version for p in session.exec(select(PolicyVersion)).all()]
        assert cache.get(session) is kept
    assert "contract-2019" in stored


def test_two_servers_starting_on_a_new_database_store_each_policy_version_once(
    engine: Engine, settings: Settings, clock: FixedClock
) -> None:
    # Two replicas started at once each load their context as a writer: the second must wait
    # for the first's versions and store none (on PostgreSQL it failed on the unique version,
    # and its start with it); SQLite's writers take turns.
    first = Session(engine)
    load_context(first, settings, clock)  # stored, not yet committed
    second: dict[str, object] = {}

    def start() -> None:
        try:
            with session_scope(engine) as session:
                second["ctx"] = load_context(session, settings, clock)
        except Exception as exc:  # handed to the test
            second["error"] = exc

    thread = threading.Thread(target=start)
    thread.start()
    _until_waiting(engine, thread)
    first.commit()
    first.close()
    thread.join(30)
    assert "error" not in second, second.get("error")
    assert isinstance(second["ctx"], SlaContext)
    with read_scope(engine) as session:
        versions = [p.version for p in session.exec(select(PolicyVersion)).all()]
        added = session.exec(
            select(AuditRecord.entity_id).where(AuditRecord.action == "policy.added")
        ).all()
    assert sorted(versions) == sorted(set(versions)) == sorted(added)
    assert "contract-2019" in versions


def _until_waiting(engine: Engine, thread: threading.Thread) -> None:
    """Until the second writer waits for the first: on PostgreSQL for a lock (any the
    server has not granted: without the policies' lock, the unique version's); SQLite's
    writers wait for its write lock, which the server does not show, so a while."""
    if engine.dialect.name != "postgresql":
        time.sleep(0.5)
        assert thread.is_alive()
        return
    waiting = sa.text("SELECT count(*) FROM pg_locks WHERE NOT granted")
    deadline = time.monotonic() + 30
    with engine.connect() as conn:
        while not conn.execute(waiting).scalar_one():
            assert thread.is_alive() and time.monotonic() < deadline, "the second never waited"
            time.sleep(0.02)
