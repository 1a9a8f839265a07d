"""The command line as a user types it, against a real database."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session
from typer.testing import CliRunner

from monitor.api.app import prepare
from monitor.api.deps import AppState
from monitor.cli import app
from monitor.core.clock import SystemClock
from monitor.core.db import make_engine
from monitor.core.settings import Settings
from monitor.scheduler.runner import run_job
from monitor.sla.service import ContextCache
from monitor.tickets.search import search_tickets
from tests.conftest import CONFIG, ROOT
from tests.helpers import SPEC_TICKET
from tests.test_durability import free_port

runner = CliRunner()


@pytest.fixture
def env(db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("SLAMON_DATABASE_URL", db_url)
    monkeypatch.setenv("SLAMON_CONFIG_DIR", str(CONFIG))
    return db_url


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def write_import(tmp_path: Path, tickets: list[dict[str, object]]) -> Path:
    path = tmp_path / "in.json"
    path.write_text(json.dumps({"tickets": tickets}, ensure_ascii=False), encoding="utf-8")
    return path


TICKET = SPEC_TICKET


def test_import_then_show_as_json_and_text(env: str, tmp_path: Path) -> None:
    code, out, err = invoke("import", str(write_import(tmp_path, [TICKET])))
    assert code == 0, err
    assert "imported 1 tickets with 4 events" in out
    code, out, _ = invoke("tickets", "show", "EX-0001", "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert [(t["id"], t["status"]) for t in data["targets"]] == [
        ("arrival", "met"),
        ("resolution", "breached"),
        ("report", "breached"),
    ]
    assert data["targets"][1]["deadline"] == "2022-08-10T13:41:00+08:00"
    code, out, _ = invoke("tickets", "show", "EX-0001")
    assert "超出 7天4小时19分" in out
    assert "2022-08-22" in out


def test_import_workers_are_bounded_and_zero_imports_in_one_process(
    env: str, tmp_path: Path
) -> None:
    path = str(write_import(tmp_path, [TICKET]))
    for wrong in ("-1", "65", "两个"):
        code, _, err = invoke("import", path, "--workers", wrong)
        assert code == 2 and "--workers" in err, err
    assert invoke("tickets", "show", "EX-0001")[0] == 1  # nothing written
    code, out, err = invoke("import", path, "--workers", "0")
    assert code == 0 and "imported 1 tickets with 4 events" in out, err


def test_dry_run_writes_nothing(env: str, tmp_path: Path) -> None:
    code, out, _ = invoke("import", str(write_import(tmp_path, [TICKET])), "--dry-run")
    assert code == 0 and "nothing written" in out
    code, _, err = invoke("tickets", "show", "EX-0001")
    assert code == 1 and "no ticket 'EX-0001'" in err


def test_a_bad_import_names_the_field_and_exits_non_zero(env: str, tmp_path: Path) -> None:
    bad = dict(TICKET, pool="pool3")
    code, _, err = invoke("import", str(write_import(tmp_path, [TICKET, bad])))
    assert code == 1
    assert "tickets[1].pool: unknown pool 'pool3'" in err
    assert "nothing was written" in err
    assert invoke("tickets", "show", "EX-0001")[0] == 1


def test_calendar_show_and_load(env: str, tmp_path: Path) -> None:
    code, out, _ = invoke("calendar", "show", "2024")
    assert code == 0
    assert "2024-02-04(周日) 调休上班" in out and "working day" in out
    code, _, err = invoke("calendar", "show", "2027")
    assert code == 1 and "2027 is not loaded" in err
    assert err.count("error:") == 1, err  # (it was followed by a second line, "error: 1")
    path = tmp_path / "2027.yaml"
    path.write_text(
        "years:\n  2027:\n    source: 国务院办公厅通知\n    holidays:\n"
        "      - {name: 元旦, date: 2027-01-01}\n    workdays:\n"
        "      - {name: 春节调休, date: 2027-02-14}\n",
        encoding="utf-8",
    )
    code, out, err = invoke("calendar", "load", str(path), "--as", "zsj-admin")
    assert code == 0, err
    code, out, _ = invoke("calendar", "show", "2027")
    assert "2027-02-14(周日) 调休上班" in out and "国务院办公厅通知" in out
    code, out, _ = invoke("audit", "verify")
    assert code == 0 and "verified" in out


def test_a_working_day_deadline_is_shown_in_local_time(env: str, tmp_path: Path) -> None:
    ticket = {
        "external_id": "Y-1",
        "pool": "pool1",
        "severity": "major",
        "title": "x",
        "events": [
            {"type": "reported", "at": "2026-11-27T09:00:00+08:00"},
            {"type": "resolved", "at": "2026-11-27T10:00:00+08:00"},
        ],
    }
    assert invoke("import", str(write_import(tmp_path, [ticket])))[0] == 0
    # 11-27 is a Friday: three working days run to 12-02, all in 2026 — known.
    _, out, _ = invoke("tickets", "show", "Y-1", "--format", "json")
    assert json.loads(out)["targets"][2]["deadline"].startswith("2026-12-02T23:59:59")


def test_an_impossible_calendar_file_is_refused(env: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "years:\n  2027:\n    workdays:\n      - {date: 2027-02-15}\n", encoding="utf-8"
    )
    code, _, err = invoke("calendar", "load", str(path))
    assert code == 1 and "years.2027" in err and "not a weekend day" in err
    assert invoke("calendar", "show", "2027")[0] == 1
    path.write_text("years: " + "{a: " * 100 + "1" + "}" * 100, encoding="utf-8")
    code, _, err = invoke("calendar", "load", str(path))
    assert code == 1 and "bad.yaml" in err and "nested more than 64 levels deep" in err


def test_db_upgrade_is_idempotent(env: str) -> None:
    assert invoke("db", "upgrade")[0] == 0
    assert invoke("db", "upgrade")[0] == 0


LATE_MAJOR = dict(TICKET, external_id="LATE-1")


def test_breaches_review_and_score_from_the_command_line(env: str, tmp_path: Path) -> None:
    assert invoke("import", str(write_import(tmp_path, [LATE_MAJOR])))[0] == 0
    code, out, _ = invoke("breaches", "list", "--pending", "--year", "2022")
    assert code == 0 and "2 breach(es)" in out
    first_id = out.split()[0]
    code, _, err = invoke("breaches", "review", first_id, "--waive", "--as", "监理-张工")
    assert code == 1 and "reason" in err
    code, out, _ = invoke("breaches", "review", first_id, "--confirm", "--as", "监理-张工")
    assert code == 0 and "confirmed" in out
    code, out, _ = invoke("score", "--year", "2022")
    data = json.loads(out)
    ind = data["indicators"][0]
    assert (ind["id"], ind["score"], ind["occurrences"]) == ("fault_timeliness", 2.0, 1)
    assert ind["breaches"] == {"pending": 1, "confirmed": 1, "waived": 0}
    assert ind["comment"] == "本年度共发生1次重大故障，其中1次故障处理超时。"
    xlsx = tmp_path / "s.xlsx"
    assert invoke("score", "--year", "2022", "--format", "xlsx", "--out", str(xlsx))[0] == 0
    assert xlsx.stat().st_size > 0
    code, out, _ = invoke("score", "--year", "2022", "--as-of", "2020-01-01T00:00:00+08:00")
    assert json.loads(out)["indicators"][0]["tickets_in_scope"] == 0
    code, out, _ = invoke("report", "monthly", "--month", "2022-08")
    assert code == 0 and "LATE-1" in out
    assert invoke("report", "monthly", "--month", "2022-13")[0] == 1


def test_check_runs_one_sweep_at_a_given_instant(env: str, tmp_path: Path) -> None:
    ticket = {
        "external_id": "OPEN-1",
        "pool": "pool1",
        "severity": "anomaly",
        "title": "x",
        "events": [{"type": "reported", "at": "2026-11-01T09:00:00+08:00"}],
    }
    assert invoke("import", str(write_import(tmp_path, [ticket])))[0] == 0
    code, out, _ = invoke("check", "--now", "2026-11-01T09:00:01+08:00")
    assert code == 0 and "0 target(s) changed" in out
    _, out, _ = invoke("check")
    # The import already judged it breached (now is past 24 h), so nothing changes.
    assert "0 target(s) changed" in out
    code, out, _ = invoke("findings", "--open")
    assert code == 0 and "overdue_open" in out


def test_token_create_prints_the_token_last_and_stores_only_a_hash(env: str) -> None:
    from sqlmodel import Session, select

    from monitor.auth.models import ApiToken

    code, out, _ = invoke("token", "create", "--role", "operator", "--pool", "pool2")
    assert code == 0
    token = out.split()[-1]
    assert token.startswith("slm_") and len(token) > 40
    with Session(make_engine(env)) as s:
        row = s.exec(select(ApiToken)).one()
        secret = token.split("_", 2)[2]  # the secret itself may hold "_"
        assert secret not in row.secret_hash and row.pool == "pool2"
    code, _, err = invoke("token", "create", "--role", "operator")
    assert code == 1 and "pool" in err
    code, _, err = invoke("token", "create", "--role", "king")
    assert code == 1 and "unknown role" in err


def test_user_create_reads_the_password_twice_from_stdin(env: str) -> None:
    from sqlmodel import Session, select

    from monitor.auth.models import User
    from monitor.auth.service import authenticate_user

    result = runner.invoke(
        app,
        ["user", "create", "zhang", "--role", "supervisor"],
        input="correct horse battery\ncorrect horse battery\n",
    )
    assert result.exit_code == 0, result.stderr
    with Session(make_engine(env)) as s:
        user = s.exec(select(User)).one()
        assert user.password_hash.startswith("$argon2id$")
        assert authenticate_user(s, "zhang", "correct horse battery") is not None
        assert authenticate_user(s, "zhang", "wrong") is None
    differ = runner.invoke(
        app,
        ["user", "create", "li", "--role", "admin"],
        input="correct horse battery\nsomething else!!\n",
    )
    assert differ.exit_code == 1 and "differ" in differ.stderr


def test_audit_checkpoint_and_tampering(env: str, tmp_path: Path) -> None:
    from monitor.core.db import make_engine
    from tests.helpers import tamper

    assert invoke("import", str(write_import(tmp_path, [TICKET])))[0] == 0
    code, out, _ = invoke("audit", "checkpoint")
    checkpoint = out.strip()
    seq, digest = checkpoint.split(":")
    assert code == 0 and int(seq) > 1 and len(digest) == 64
    assert invoke("audit", "verify", "--checkpoint", checkpoint)[0] == 0
    assert invoke("import", str(write_import(tmp_path, [dict(TICKET, external_id="B")])))[0] == 0
    code, out, _ = invoke("audit", "verify", "--checkpoint", checkpoint)
    assert code == 0 and "checkpoint" in out

    engine = make_engine(env)
    tamper(engine, "UPDATE events SET occurred_at = occurred_at WHERE 1 = 0")
    assert invoke("audit", "verify")[0] == 0
    # Move the arrival 20 minutes earlier behind the application's back.
    tamper(engine, "UPDATE events SET note = 'rewritten' WHERE seq = 2 AND ticket_id = 1")
    code, _, err = invoke("audit", "verify")
    assert code == 1 and "event #2 of ticket 1 was changed" in err
    tamper(engine, "DELETE FROM audit_log WHERE seq = (SELECT MAX(seq) FROM audit_log)")
    code, _, err = invoke("audit", "verify", "--checkpoint", checkpoint)
    assert code == 1
    engine.dispose()


def test_deleting_an_event_is_named(env: str, tmp_path: Path) -> None:
    from monitor.core.db import make_engine
    from tests.helpers import tamper

    assert invoke("import", str(write_import(tmp_path, [TICKET])))[0] == 0
    engine = make_engine(env)
    tamper(engine, "DELETE FROM events WHERE seq = 4 AND ticket_id = 1")
    code, _, err = invoke("audit", "verify")
    assert code == 1 and "event #4 of ticket 1 was deleted" in err
    engine.dispose()


def test_serve_refuses_a_bad_policy_file_naming_the_field(
    env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    folder = tmp_path / "config"
    shutil.copytree(CONFIG, folder)
    policy = folder / "sla.yaml"
    policy.write_text(
        policy.read_text(encoding="utf-8").replace("warn_at: 0.8", "warn_at: 2", 1),
        encoding="utf-8",
    )
    monkeypatch.setenv("SLAMON_CONFIG_DIR", str(folder))
    code, _, err = invoke("serve", "--port", "1")
    assert code == 1
    assert "sla.yaml" in err and "policies[0].severities.major.targets[0].warn_at" in err


@pytest.mark.parametrize("setting", [None, "true"])
def test_serve_logs_each_request_only_when_asked(
    env: str, monkeypatch: pytest.MonkeyPatch, setting: str | None
) -> None:
    import uvicorn

    if setting is not None:
        monkeypatch.setenv("SLAMON_ACCESS_LOG", setting)
    ran: dict[str, object] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: ran.update(options))
    code, _, err = invoke("serve", "--port", "1")
    assert code == 0, err
    assert ran["access_log"] is (setting == "true")


@pytest.mark.parametrize("workers", ["0", "17", "two"])
def test_serve_refuses_a_number_of_workers_it_cannot_start(
    env: str, monkeypatch: pytest.MonkeyPatch, workers: str
) -> None:
    import uvicorn

    ran: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: ran.append(app))
    code, _, err = invoke("serve", "--port", "1", "--workers", workers)
    assert code == 2 and "--workers" in err and not ran


# A worker that cannot start (an install changed under the running server, met when a worker
# is replaced): its supervisor stops the other workers, and `serve` must then not exit 0, or
# whatever restarts failed services never restarts it. The factory is missing from a module
# that imports at once: a worker failing only after the second the application's imports
# take was often caught with uvicorn's health check unanswered, which waits 5 s.
SERVE_WITH_A_BROKEN_WORKER = """
import sys
import monitor.cli as cli
cli.WORKER_APP = "monitor:no_such_application"
cli.app(sys.argv[1:])
"""


@pytest.mark.slow
def test_serve_with_workers_exits_1_when_a_worker_cannot_start(env: str) -> None:
    serve = ["serve", "--workers", "2", "--port", str(free_port())]
    done = subprocess.run(
        [sys.executable, "-c", SERVE_WITH_A_BROKEN_WORKER, *serve],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 1, done.stderr
    assert "no_such_application" in done.stderr  # uvicorn's own line, from the worker
    assert "error: a worker could not start" in done.stderr


@pytest.mark.parametrize(
    ("variable", "value"), [("SLAMON_ACCESS_LOG", "maybe"), ("SLAMON_LEASE_SECONDS", "-1")]
)
def test_a_bad_setting_is_named_and_nothing_starts(
    env: str, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    import uvicorn

    monkeypatch.setenv(variable, value)
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: pytest.fail("it started"))
    code, _, err = invoke("serve", "--port", "1")
    assert code == 1 and f"error: {variable}: " in err and "Traceback" not in err


def test_tickets_list_filters_like_the_api_as_table_json_and_csv(env: str, tmp_path: Path) -> None:
    other = {**TICKET, "external_id": "YY-1", "pool": "pool1", "severity": "general"}
    other["events"] = [{"type": "reported", "at": "2022-09-01T10:00:00+08:00"}]
    code, _, err = invoke("import", str(write_import(tmp_path, [TICKET, other])))
    assert code == 0, err
    code, out, err = invoke("tickets", "list", "--severity", "重大故障")
    assert code == 0, err
    assert "EX-0001" in out and "YY-1" not in out and "政务二云" in out and "重大故障" in out
    assert "1–1 of 1 ticket(s)" in out
    code, out, _ = invoke("tickets", "list", "--pool", "政务一云", "--format", "json")
    assert [t["external_id"] for t in json.loads(out)["items"]] == ["YY-1"]
    code, out, _ = invoke("tickets", "list", "--not-breached", "--format", "json")
    assert json.loads(out)["total"] == 0  # both clocks ran out long ago
    code, out, _ = invoke(
        "tickets", "list", "--from", "2022-09-01T00:00:00+08:00", "--q", "YY", "--format", "csv"
    )
    assert out.startswith("\ufeff编号,外部单号") and "YY-1" in out and "EX-0001" not in out
    code, _, err = invoke("tickets", "list", "--status", "完成了")
    assert code == 1 and "status" in err


def flat(*args: str) -> tuple[int, str]:
    """Exit code and stderr with the terminal's line wrapping undone."""
    code, _, err = invoke(*args)
    return code, " ".join(err.split())


def test_audit_messages_say_what_is_wrong_and_show_local_times(env: str, tmp_path: Path) -> None:
    from monitor.core.db import make_engine
    from tests.helpers import tamper

    code, err = flat("audit", "verify", "--checkpoint", "5:deadbeef")
    assert code == 1 and "HASH has 8 characters" in err and "64" in err
    code, err = flat("audit", "verify", "--checkpoint", "x:" + "0" * 64)
    assert code == 1 and "SEQ 'x' is not a record number" in err
    assert invoke("import", str(write_import(tmp_path, [TICKET])))[0] == 0
    engine = make_engine(env)
    tamper(
        engine,
        "UPDATE events SET occurred_at = occurred_at - INTERVAL '20 minutes' WHERE seq = 2"
        if env.startswith("postgresql")
        else "UPDATE events SET occurred_at = datetime(occurred_at, '-20 minutes') WHERE seq = 2",
    )
    engine.dispose()
    code, err = flat("audit", "verify")
    assert code == 1 and "audit says 2022-08-10 12:05:00+08:00" in err, err
    assert "table has 2022-08-10 11:45:00+08:00" in err and "+00:00" not in err


def test_check_says_next_years_calendar_is_missing(env: str) -> None:
    code, out, _ = invoke("check", "--now", "2026-10-01T10:00:00+08:00")
    assert code == 0 and "calendar_missing" not in out
    code, out, _ = invoke("check", "--now", "2026-11-20T10:00:00+08:00")
    assert code == 0 and "calendar_missing" in out and "2027" in out
    code, out, _ = invoke("findings", "--open")
    assert "calendar_missing" in out


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_command_leaves_no_database_connection_open(env: str, pg_engine: Engine) -> None:
    # A command's connections close with it, not when Python's collector finds its engine:
    # a process that goes on (a test run, a script calling the commands) kept one each.
    others = sa.text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    with pg_engine.connect() as conn:
        before = conn.execute(others).scalar()
    gc.disable()  # (the collector would close them too, some time later)
    try:
        code, _, err = invoke("tickets", "list")
        assert code == 0, err
        with pg_engine.connect() as conn:
            after = conn.execute(others).scalar()
    finally:
        gc.enable()
    assert after == before


def breached_search(url: str) -> tuple[set[str], str]:
    """The search for breached major tickets: the external ids it finds and, on SQLite, how
    its planner reads the target states (the plan's lines of the statements it ran)."""
    from monitor.core.db import make_engine

    engine = make_engine(url)
    sent: list[tuple[str, Any]] = []
    sa.event.listen(
        engine, "before_cursor_execute", lambda *a: sent.append((a[2], a[3])), named=False
    )
    with Session(engine) as session:
        found = search_tickets(session, severity="major", breached=True, per_page=100)
        ids = {ticket.external_id for ticket, _ in found.rows}
        plan = []
        if engine.dialect.name == "sqlite":
            for sql, params in list(sent):
                if "EXISTS" in sql:
                    explained = session.connection().exec_driver_sql(
                        f"EXPLAIN QUERY PLAN {sql}", params
                    )
                    plan += [row[-1] for row in explained]
    engine.dispose()
    return ids, "\n".join(plan)


def test_sqlites_planner_has_statistics_after_an_import_a_start_and_the_daily_job(
    env: str, tmp_path: Path
) -> None:
    """SQLite keeps no statistics of its own; without them its planner chose indexes blind
    (the search for breached major tickets once read every breached target state for each
    major ticket: 21.7 s at 78,000 tickets). An import, a server's start and the daily job
    take them, and the search reads each ticket's own states (on PostgreSQL its autovacuum
    keeps them; the answer is the same)."""
    from monitor.core.db import make_engine

    late = [{**SPEC_TICKET, "external_id": f"L-{i}"} for i in range(30)]
    general = [{**SPEC_TICKET, "external_id": f"G-{i}", "severity": "general"} for i in range(10)]
    assert invoke("import", str(write_import(tmp_path, late + general)))[0] == 0
    expected = {t["external_id"] for t in late}
    settings = Settings(database_url=env, config_dir=CONFIG, evidence_dir=tmp_path / "ev")
    clock = SystemClock()

    def forget_statistics() -> None:
        if env.startswith("sqlite"):
            engine = make_engine(env)
            with engine.begin() as connection:
                connection.exec_driver_sql("DELETE FROM sqlite_stat1")
            engine.dispose()
            assert counted_tickets(env) is None

    def start() -> None:
        engine = make_engine(env)
        prepare(AppState(settings, engine, clock, ContextCache(settings, clock)), False)
        engine.dispose()

    def daily_job() -> None:
        engine = make_engine(env)
        run_job(engine, settings, clock, "reconcile_metrics")
        engine.dispose()

    for moment in ("import", "start", "daily job"):
        if moment == "start":
            forget_statistics()
            start()
        elif moment == "daily job":
            forget_statistics()
            daily_job()
        ids, plan = breached_search(env)
        assert ids == expected, moment
        if env.startswith("sqlite"):
            assert counted_tickets(env) == len(late + general), moment
            assert "target_states" in plan and "(ticket_id=?)" in plan, (moment, plan)


def counted_tickets(url: str) -> int | None:
    """How many tickets SQLite's statistics say there are (None: no statistics)."""
    engine = make_engine(url)
    with engine.connect() as connection:
        stat = connection.exec_driver_sql(
            "SELECT stat FROM sqlite_stat1 WHERE tbl = 'tickets' LIMIT 1"
        ).scalar()
    engine.dispose()
    return int(stat.split()[0]) if stat else None


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_sqlites_statistics_are_taken_again_once_the_tickets_grow_by_a_quarter(
    env: str, tmp_path: Path
) -> None:
    """Whole statistics cost a read of every index: they are taken when there are none and
    again once the tickets have grown by a quarter, not at every start or import."""

    def imported(prefix: str, count: int) -> None:
        rows = [{**SPEC_TICKET, "external_id": f"{prefix}-{i}"} for i in range(count)]
        assert invoke("import", str(write_import(tmp_path, rows)))[0] == 0

    imported("A", 40)
    assert counted_tickets(env) == 40
    imported("B", 9)  # 49 < 40 × 1.25: the statistics stand
    assert counted_tickets(env) == 40
    imported("C", 1)  # 50: a quarter more
    assert counted_tickets(env) == 50


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_connection_already_open_plans_by_the_statistics_taken_after_it_opened(
    env: str, tmp_path: Path
) -> None:
    """The daily job's statistics reach the server's pooled connections (and the other
    workers'), not only the connection that took them."""
    late = [{**SPEC_TICKET, "external_id": f"L-{i}"} for i in range(30)]
    assert invoke("import", str(write_import(tmp_path, late)))[0] == 0
    engine = make_engine(env)
    with engine.begin() as connection:  # emptied: the planner's defaults mislead it here
        connection.exec_driver_sql("DELETE FROM sqlite_stat1")
    # (Major tickets with a breach waiting for review: blind, the planner reads every pending
    # breach for each ticket, by the index on review.)
    sql = (
        "EXPLAIN QUERY PLAN SELECT tickets.id FROM tickets WHERE tickets.current_severity = ? "
        "AND EXISTS (SELECT breaches.id FROM breaches WHERE "
        "breaches.ticket_id = tickets.id AND breaches.review = ?)"
    )
    engine.dispose()
    engine = make_engine(env)  # (a connection of its own, opened after the statistics went)
    held = engine.connect()  # a server's pooled connection, opened before the daily job
    try:
        before = " ".join(row[-1] for row in held.exec_driver_sql(sql, ("major", "pending")))
        assert "(review=?)" in before, before
        held.rollback()
        settings = Settings(database_url=env, config_dir=CONFIG, evidence_dir=tmp_path / "ev")
        server = make_engine(env)
        run_job(server, settings, SystemClock(), "reconcile_metrics")
        server.dispose()
        held.exec_driver_sql("SELECT count(*) FROM tickets").all()  # (any read of the file)
        # (A text of its own: the driver keeps a prepared EXPLAIN with the plan it had.)
        again = held.exec_driver_sql(f"{sql} -- again", ("major", "pending"))
        after = " ".join(row[-1] for row in again)
        assert "(ticket_id=?)" in after and "(review=?)" not in after, after
    finally:
        held.close()
        engine.dispose()
