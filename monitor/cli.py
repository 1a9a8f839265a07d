"""The `sla-monitor` command line."""

from __future__ import annotations

import gc
import json
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
from rich.table import Table
from sqlalchemy.engine import Engine
from sqlmodel import Session

from monitor.audit.service import head
from monitor.audit.verify import verify
from monitor.auth.service import create_token, create_user, list_tokens, revoke_token
from monitor.breaches.findings import KINDS, list_findings
from monitor.breaches.service import get_breach, list_breaches, overrun
from monitor.calendars.loader import read_calendar_file
from monitor.core.batch import collector_paused
from monitor.core.clock import Clock, FixedClock, SystemClock
from monitor.core.db import (
    ensure_schema,
    make_engine,
    read_scope,
    refresh_statistics,
    session_scope,
    upgrade,
)
from monitor.core.errors import ConfigError, DomainError, InvalidInput
from monitor.core.grants import grant
from monitor.core.settings import Settings, get_settings
from monitor.core.timeutil import human_duration, parse_instant, show
from monitor.demo.data import load_demo
from monitor.judging.flow import WriteFlow, write_flow
from monitor.judging.jobs import load_calendar
from monitor.reports import monthly
from monitor.reports.sheets import csv_bytes
from monitor.scheduler.runner import Runner, run_job
from monitor.scoring import exporters
from monitor.scoring.feed import scoring_feed
from monitor.sla.service import ContextCache, SlaContext, load_context
from monitor.sla.vocab import CorrectionState, Review
from monitor.sla.words import words
from monitor.tickets.importer import import_rows, read_rows
from monitor.tickets.lookup import TicketFilters, find_page
from monitor.tickets.render import ticket_text
from monitor.tickets.service import Actor, find_ticket, ticket_out

app = typer.Typer(
    help="SLA Monitor: fault tickets against the contract SLA.",
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
tickets_app = typer.Typer(help="Look at tickets.", no_args_is_help=True)
calendar_app = typer.Typer(help="The official working-day calendar.", no_args_is_help=True)
audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)
breaches_app = typer.Typer(help="Breaches and the supervisor's review.", no_args_is_help=True)
report_app = typer.Typer(help="Reports for the supervision unit.", no_args_is_help=True)
app.add_typer(breaches_app, name="breaches")
app.add_typer(report_app, name="report")
app.add_typer(db_app, name="db")
app.add_typer(tickets_app, name="tickets")
app.add_typer(calendar_app, name="calendar")
app.add_typer(audit_app, name="audit")

err = Console(stderr=True)
out = Console(highlight=False, soft_wrap=True)


class Format(StrEnum):
    text = "text"
    json = "json"


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code)


def cli_settings() -> Settings:
    """The settings, or exit 1 naming each bad SLAMON_* variable."""
    try:
        return get_settings()
    except ConfigError as exc:
        raise fail(str(exc)) from None


@contextmanager
def runtime(
    clock: Clock | None = None, *, bulk: bool = False
) -> Iterator[tuple[Settings, Engine, Clock]]:
    """Settings, a ready database and a clock, with domain errors turned into messages.
    `bulk`: the command writes one large transaction (`make_engine`)."""
    settings = cli_settings()
    engine = make_engine(settings.database_url, bulk=bulk)
    try:
        ensure_schema(engine)
        yield settings, engine, clock or SystemClock()
    except InvalidInput as exc:
        for problem in exc.problems:
            err.print(f"[red]error:[/red] {problem}", highlight=False)
        err.print("nothing was written", highlight=False)
        raise typer.Exit(1) from None
    except typer.Exit:
        raise  # (a RuntimeError too: said already, by `fail`)
    except (DomainError, ConfigError, RuntimeError) as exc:
        raise fail(str(exc)) from None
    finally:
        # Its connections close with the command, not whenever the collector finds the
        # engine (a caller that goes on, as the tests do, kept one open on PostgreSQL).
        engine.dispose()


@contextmanager
def unit_of_work(
    clock: Clock | None = None, *, bulk: bool = False
) -> Iterator[tuple[Session, SlaContext]]:
    """A write transaction, for writes outside the ticket flow (tokens, users)."""
    with runtime(clock, bulk=bulk) as (settings, engine, clk), session_scope(engine) as session:
        yield session, load_context(session, settings, clk)


@contextmanager
def writing(clock: Clock | None = None, *, bulk: bool = False) -> Iterator[WriteFlow]:
    """A write transaction through the write flow (tickets, reviews, calendar loads)."""
    with unit_of_work(clock, bulk=bulk) as (session, ctx), write_flow(session, ctx) as flow:
        yield flow


@contextmanager
def reading(clock: Clock | None = None) -> Iterator[tuple[Session, SlaContext]]:
    """A read-only transaction: looking never takes the write lock."""
    with runtime(clock) as (settings, engine, clk), read_scope(engine) as session:
        yield session, load_context(session, settings, clk, write=False)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the database migrations."""
    settings = cli_settings()
    make_engine(settings.database_url)  # creates the SQLite folder
    upgrade(settings.database_url)
    out.print("database schema is current")


@db_app.command("grant")
def db_grant(
    role: Annotated[str, typer.Argument(help="an existing PostgreSQL role the server logs in as")],
) -> None:
    """Give the serving role exactly the rights the product needs (PostgreSQL; run as the
    owner after `db upgrade`): no TRUNCATE, no UPDATE or DELETE of append-only tables."""
    settings = cli_settings()
    engine = make_engine(settings.database_url)
    try:
        statements = grant(engine, role)
    except ValueError as exc:
        raise fail(str(exc)) from None
    for statement in statements:
        out.print(statement, markup=False)
    out.print(f"role {role} may now serve; keep migrating as the owner")


@app.command("import")
def import_cmd(
    file: Annotated[Path, typer.Argument(help=".json, .csv or .xlsx")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="check everything, write nothing")
    ] = False,
    actor: Annotated[
        str, typer.Option("--as", help="who is importing (kept on every event)")
    ] = "import",
    strict: Annotated[
        bool, typer.Option("--strict", help="refuse columns the import does not know")
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=0,
            max=64,
            help="processes that read, check and judge the rows while one writes "
            "(0: all in one process; default: one for each CPU)",
        ),
    ] = None,
) -> None:
    """Import tickets with their events; all or nothing, errors name the row and field."""

    class DryRun(Exception):
        pass

    summary = None
    try:
        # The collector waits for the whole import, the file's reading included: the rows
        # live until it ends, and its passes over them (233 young ones while a JSON file of
        # 20,000 tickets was read, then between chunks) were 9 % of such an import. An import
        # makes little cyclic garbage, and not by its size (about 2,000 objects, measured).
        with collector_paused(), writing(bulk=True) as flow:
            rows = read_rows(file)
            if file.suffix.lower() == ".xlsx":
                gc.collect()  # a workbook is a cycle holding its shared strings: freed here
            progress = Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=err,
                transient=True,
                disable=len(rows) < 50,
            )
            with progress:
                task = progress.add_task(f"importing {file.name}", total=len(rows))
                summary = import_rows(
                    flow,
                    rows,
                    Actor(actor, "admin", "import"),
                    lambda n: progress.advance(task, n),
                    strict=strict,
                    workers=(os.cpu_count() or 1) if workers is None else workers,
                )
            if dry_run:
                raise DryRun
            # A large import changes the file's proportions: SQLite's planner statistics
            # follow at once, with the import's rows, in its transaction.
            refresh_statistics(flow.session.connection())
    except DryRun:
        pass
    assert summary is not None
    head = "dry run, nothing written: would import" if dry_run else "imported"
    lines = summary.lines()
    out.print(f"{head} {lines[0]}")
    for line in lines[1:]:
        out.print(f"  {line}")


@tickets_app.command("show")
def tickets_show(
    ref: Annotated[str, typer.Argument(help="id, external id, or POOL:EXTERNAL_ID")],
    format: Annotated[Format, typer.Option("--format")] = Format.text,
) -> None:
    """One ticket: its timeline, each target's state, and how each deadline was computed."""

    with reading() as (session, ctx):
        ticket = find_ticket(session, ref)
        data = ticket_out(session, ctx, ticket)
    if format is Format.json:
        sys.stdout.write(json.dumps(data.model_dump(mode="json"), ensure_ascii=False, indent=2))
        sys.stdout.write("\n")
        return

    out.print(ticket_text(data, ctx.tz), markup=False)


class ListFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


@tickets_app.command("list")
def tickets_list(
    pool: Annotated[str | None, typer.Option("--pool", help="pool2 or 政务二云")] = None,
    severity: Annotated[str | None, typer.Option("--severity", help="major or 重大故障")] = None,
    status: Annotated[
        str | None, typer.Option("--status", help="open|resolved|closed or 处理中|已解决|已关闭")
    ] = None,
    breached: Annotated[
        bool | None, typer.Option("--breached/--not-breached", help="with a breached target")
    ] = None,
    reported_from: Annotated[str | None, typer.Option("--from", help="reported from")] = None,
    reported_to: Annotated[str | None, typer.Option("--to", help="reported at or before")] = None,
    q: Annotated[str | None, typer.Option("--q", help="id, external id or a word")] = None,
    source: Annotated[str | None, typer.Option("--source", help="monitoring or 监控发现")] = None,
    page: Annotated[int, typer.Option("--page", min=1)] = 1,
    per_page: Annotated[int, typer.Option("--per-page", min=1, max=500)] = 50,
    format: Annotated[ListFormat, typer.Option("--format")] = ListFormat.table,
) -> None:
    """Find tickets with the API's filters (codes or Chinese names), newest report first."""
    begin = parse_time_option("--from", reported_from).now() if reported_from else None
    end = parse_time_option("--to", reported_to).now() if reported_to else None
    filters = TicketFilters(pool, severity, status, breached, begin, end, q, source)
    with reading() as (session, ctx):
        found = find_page(session, ctx, filters, scope=None, page=page, per_page=per_page)
        vocabulary = words(ctx)
    if format is ListFormat.json:
        sys.stdout.write(found.model_dump_json(indent=2) + "\n")
        return
    headers = ["编号", "外部单号", "资源池", "严重程度", "状态", "报障时间", "超时", "标题"]
    rows = [
        [
            t.id,
            t.external_id or "",
            vocabulary.pool_label(t.pool),
            vocabulary.severity_label(t.severity),
            vocabulary.ticket_status_label(t.status),
            t.reported_at.replace("T", " "),
            "是" if t.breached else "否",
            t.title,
        ]
        for t in found.items
    ]
    if format is ListFormat.csv:
        emit(csv_bytes(headers, rows, "utf-8-sig"), None)
        return
    table = Table(*headers, box=None, pad_edge=False, show_edge=False)
    for row in rows:
        table.add_row(*map(str, row))
    out.print(table)
    shown = f"{(page - 1) * per_page + 1}–{(page - 1) * per_page + len(rows)}" if rows else "0"
    total = f"{found.total}" if found.total_exact else f"more than {found.total}"
    out.print(f"{shown} of {total} ticket(s)")


@calendar_app.command("show")
def calendar_show(year: int) -> None:
    """Every day of YEAR that is not an ordinary weekday or weekend, with its source."""
    with reading() as (_, ctx):
        cal = ctx.calendar
        if not cal.knows(year):
            known = cal.known_years
            raise fail(
                f"the working-day calendar of {year} is not loaded (known: "
                f"{known[0]}–{known[-1]}); load the official arrangement with "
                "`sla-monitor calendar load FILE`"
            )
        arrangement = cal.arrangement(year)
        out.print(f"{year}: {cal.workday_count(year)} working days; source: {arrangement.source}")
        for day in cal.special_days(year):
            kind = "working day" if day.workday else "day off"
            out.print(f"  {day.describe()}  → {kind}  [{day.source}]", markup=False)


@calendar_app.command("load")
def calendar_load(
    file: Path,
    actor: Annotated[
        str, typer.Option("--as", help="who loads it (kept in the audit log)")
    ] = "admin",
) -> None:
    """Load official arrangements (a YAML file of years); the targets they affect are re-judged."""
    with writing() as flow:
        if not file.exists():
            raise fail(f"{file}: file not found")
        arrangements = read_calendar_file(file)
        changed = load_calendar(flow, arrangements, actor=actor, file_name=file.name)
    for a in arrangements:
        out.print(
            f"loaded {a.year}: {len(a.holidays)} holiday dates, {len(a.workdays)} make-up "
            f"working days ({a.source})"
        )
    out.print(f"re-judged {changed} tickets")


def parse_checkpoint(text: str) -> tuple[int, str]:
    """SEQ:HASH as `audit checkpoint` prints it, or what is wrong with it."""
    seq, colon, digest = text.strip().partition(":")
    if not colon:
        raise ValueError("no ':' — write SEQ:HASH as printed by `sla-monitor audit checkpoint`")
    if not seq.isdigit() or int(seq) < 1:
        raise ValueError(f"SEQ {seq!r} is not a record number (1, 2, …)")
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest.lower()):
        raise ValueError(
            f"HASH has {len(digest)} characters; a checkpoint's hash is 64 hexadecimal "
            "characters (sha256)"
        )
    return int(seq), digest.lower()


@audit_app.command("verify")
def audit_verify(
    checkpoint: Annotated[
        str | None,
        typer.Option(
            "--checkpoint",
            help="SEQ:HASH printed earlier by `audit checkpoint`: "
            "prove the log has only grown since",
        ),
    ] = None,
) -> None:
    """Recompute the audit log's hash chain; name the first record that does not verify."""

    expected = None
    if checkpoint is not None:
        try:
            expected = parse_checkpoint(checkpoint)
        except ValueError as exc:
            raise fail(f"--checkpoint {checkpoint}: {exc}") from None
    with runtime() as (settings, engine, _clock), read_scope(engine) as session:
        result = verify(session, checkpoint=expected, tz=settings.tz)
    if not result.ok:
        where = f"audit record {result.bad_seq}" if result.bad_seq else "the stored data"
        raise fail(
            f"{where} does not verify: {result.reason} ({result.checked} audit records checked)"
        )
    extra = f"; checkpoint {checkpoint} is part of it" if checkpoint else ""
    out.print(f"audit log verified: {result.checked} records{extra}")


@audit_app.command("checkpoint")
def audit_checkpoint() -> None:
    """Print the head of the audit log (SEQ:HASH) to keep outside the database."""

    with runtime() as (_, engine, _clock), read_scope(engine) as session:
        record = head(session)
    if record is None:
        raise fail("the audit log is empty")
    out.print(f"{record.seq}:{record.hash}", markup=False)


def serve_banner(host: str, port: int, metrics_token: bool) -> list[str]:
    """What a person needs on start: where everything is, and how to get in."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    base = f"http://{shown}:{port}"
    command = "sla-monitor" if shutil.which("sla-monitor") else ".venv/bin/sla-monitor"
    return [
        f"SLA Monitor on {base}",
        f"  web UI        {base}/",
        f"  API docs      {base}/docs   (OpenAPI {base}/openapi.json; API under /api/v1)",
        f"  metrics       {base}/metrics"
        + ("   (needs SLAMON_METRICS_TOKEN)" if metrics_token else ""),
        f"  health        {base}/healthz  {base}/readyz",
        "API tokens are printed once, when made; to get one (or a login for the web UI):",
        f"  {command} token create --role supervisor      # an operator also needs --pool",
        f"  {command} user create NAME --role supervisor  # asks for the password twice",
    ]


# Processes `serve --workers` may start: each takes a core, a pool of database connections
# and (PostgreSQL) a listener connection.
MAX_WORKERS = 16


@app.command("serve")
def serve_cmd(
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8000,
    demo: Annotated[
        bool, typer.Option("--demo", help="load the demo year into an empty database first")
    ] = False,
    no_scheduler: Annotated[
        bool, typer.Option("--no-scheduler", help="serve only; another process runs the jobs")
    ] = False,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            max=MAX_WORKERS,
            help="server processes sharing the port, one core each (README: Running at scale)",
        ),
    ] = 1,
) -> None:
    """API, health checks and the scheduler in one process (or in --workers processes)."""
    import uvicorn

    from monitor.api.app import WORKER_OPTIONS, AppState, create_app, prepare

    with runtime() as (settings, engine, clock):
        # Refuse a bad catalog, policy or calendar file here, with its message, not a traceback.
        with read_scope(engine) as session:
            load_context(session, settings, clock, write=False)
        loopback = host in ("127.0.0.1", "::1", "localhost")
        if not loopback and not settings.metrics_token:
            err.print(
                f"/metrics is closed on {host}: set SLAMON_METRICS_TOKEN and give Prometheus "
                "the same token (README: Security)",
                highlight=False,
            )
        if workers > 1:
            # Once, here, before the workers start (they would each do it, and race): the
            # schema, the policy and calendar versions, the demo year.
            contexts = ContextCache(settings, clock)
            prepare(AppState(settings, engine, clock, contexts), demo)
            engine.dispose()  # each worker opens its own
            options = {"scheduler": not no_scheduler, "metrics_open": loopback}
            os.environ[WORKER_OPTIONS] = json.dumps(options)
            for line in serve_banner(host, port, settings.metrics_token is not None):
                err.print(line, highlight=False, markup=False, soft_wrap=True)
            _supervise(workers, host, port, settings.access_log)
            return
        application = create_app(
            settings,
            clock=clock,
            engine=engine,
            scheduler=not no_scheduler,
            demo=demo,
            metrics_open=loopback,
        )
        for line in serve_banner(host, port, settings.metrics_token is not None):
            err.print(line, highlight=False, markup=False, soft_wrap=True)
        # What is built by now (modules, the app, its routes and schemas) lives as long as the
        # process: frozen, the collector's full passes no longer walk it. Measured under
        # `POST /tickets` load, a full pass took 136 ms, a pause every request in flight waits
        # out; see "Running at scale" in README.md. (Unfrozen after, for a caller that goes
        # on: the tests that run this command in their own process.)
        gc.collect()
        gc.freeze()
        try:
            uvicorn.run(
                application,
                host=host,
                port=port,
                log_level="info",
                access_log=settings.access_log,
            )
        finally:
            gc.unfreeze()


# The application factory each `serve --workers` process starts from.
WORKER_APP = "monitor.api.app:worker_app"


def _supervise(workers: int, host: str, port: int, access_log: bool) -> None:
    """uvicorn's supervisor over `workers` processes on one socket, as `uvicorn --workers`
    runs it; it replaces a worker that dies. When a worker fails to start, the supervisor
    stops the others and returns as if asked to: then exit 1, so that whatever runs the
    server (systemd's `Restart=on-failure`, an orchestrator) sees the failure."""
    import uvicorn
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors import Multiprocess

    from monitor.api.app import WORKER_OPTIONS

    config = uvicorn.Config(
        WORKER_APP,
        factory=True,
        workers=workers,
        host=host,
        port=port,
        log_level="info",
        access_log=access_log,
    )
    sock = config.bind_socket()
    supervisor = Multiprocess(config, sockets=[sock])
    try:
        supervisor.run()
    finally:
        sock.close()
        os.environ.pop(WORKER_OPTIONS, None)  # (for a caller that goes on, as the tests do)
    if any(p.exitcode == STARTUP_FAILURE for p in supervisor.processes):
        raise fail("a worker could not start (see its log above); the others were stopped")


@app.command("scheduler")
def scheduler_cmd() -> None:
    """Run only the scheduler (lease, breach wake-ups, safety sweep, daily findings)."""
    import signal
    import threading

    stop = threading.Event()
    with runtime() as (settings, engine, clock):
        runner = Runner(engine, settings, clock)
        runner.start()
        err.print(f"scheduler {runner.holder} running; Ctrl-C stops it", highlight=False)
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            while not stop.wait(1):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            runner.stop()


token_app = typer.Typer(help="API tokens.", no_args_is_help=True)
user_app = typer.Typer(help="User accounts.", no_args_is_help=True)
app.add_typer(token_app, name="token")
app.add_typer(user_app, name="user")


@token_app.command("create")
def token_create(
    role: Annotated[str, typer.Option("--role", help="operator|supervisor|admin|evaluator")],
    pool: Annotated[str | None, typer.Option("--pool", help="an operator's pool")] = None,
    name: Annotated[str | None, typer.Option("--name", help="who uses it")] = None,
    expires: Annotated[
        str | None,
        typer.Option("--expires", help="refused from this time on, e.g. 2027-06-30T00:00+08:00"),
    ] = None,
) -> None:
    """Create an API token; it is printed once, as the last word, and stored only hashed."""
    until = parse_time_option("--expires", expires).now() if expires else None
    with unit_of_work() as (session, ctx):
        row, value = create_token(
            session,
            name=name or f"{role}{'-' + pool if pool else ''}",
            role=role,
            pool=pool,
            known_pools=ctx.catalog.pool_ids,
            now=ctx.now(),
            expires_at=until,
        )
    until_text = f", valid until {show(until, ctx.tz)}" if until else ""
    out.print(
        f"token {row.id} for {row.name} ({row.role}{', ' + row.pool if row.pool else ''})"
        f"{until_text}, shown once: {value}",
        markup=False,
    )


@token_app.command("list")
def token_list() -> None:
    """Every API token (never its secret): who it is for, and whether it still works."""
    with reading() as (session, ctx):
        rows = list_tokens(session)
        now = ctx.now()
    for t in rows:
        if t.revoked_at is not None:
            state = f"revoked {show(t.revoked_at, ctx.tz)}"
        elif t.expires_at is not None and t.expires_at <= now:
            state = f"expired {show(t.expires_at, ctx.tz)}"
        else:
            state = "active" + (f" until {show(t.expires_at, ctx.tz)}" if t.expires_at else "")
        out.print(
            f"{t.id:>5}  slm_{t.prefix}_…  {t.name}  {t.role}{' ' + t.pool if t.pool else ''}  "
            f"created {show(t.created_at, ctx.tz)}  {state}",
            markup=False,
        )
    out.print(f"{len(rows)} token(s)")


@token_app.command("revoke")
def token_revoke(
    ref: Annotated[str, typer.Argument(metavar="ID", help="the id or prefix from `token list`")],
    actor: Annotated[str, typer.Option("--as", help="who revokes it (audited)")] = "admin",
) -> None:
    """Revoke a token: every replica refuses it from the next request on (audited)."""
    with unit_of_work() as (session, ctx):
        row = revoke_token(session, ref.strip(), actor=actor, now=ctx.now())
    out.print(f"token {row.id} ({row.name}) revoked", markup=False)


@user_app.command("create")
def user_create(
    name: str,
    role: Annotated[str, typer.Option("--role")],
    pool: Annotated[str | None, typer.Option("--pool")] = None,
) -> None:
    """Create a user; the password is read twice (from standard input when not a terminal)."""

    if sys.stdin.isatty():
        import getpass

        first, second = getpass.getpass("password: "), getpass.getpass("again: ")
    else:
        lines = sys.stdin.read().splitlines()
        first, second = [*lines, "", ""][:2]
    if first != second:
        raise fail("the two passwords differ")
    with unit_of_work() as (session, ctx):
        create_user(
            session,
            name=name,
            password=first,
            role=role,
            pool=pool,
            known_pools=ctx.catalog.pool_ids,
            now=ctx.now(),
        )
    out.print(f"user {name} created ({role}{', ' + pool if pool else ''})")


@app.command("demo")
def demo_cmd() -> None:
    """Load the demo year (2022, both pools) into an empty database."""

    with writing() as flow:
        count = load_demo(flow)
    out.print(
        f"loaded the demo year: {count} tickets"
        if count
        else "the database already holds tickets; demo data not loaded"
    )


def parse_time_option(name: str, value: str | None) -> Clock:
    """A clock fixed at an --now/--as-of time, or the system clock."""
    if value is None:
        return SystemClock()
    try:
        return FixedClock(parse_instant(value, cli_settings().tz))
    except ValueError as exc:
        raise fail(f"{name}: {exc}") from None


@app.command("check")
def check_cmd(
    now: Annotated[
        str | None, typer.Option("--now", help="judge at this instant (replays)")
    ] = None,
) -> None:
    """Run the breach sweep and the findings job once, as the scheduler does; print what they
    looked at and what changed."""
    clock = parse_time_option("--now", now)
    with runtime(clock) as (settings, engine, clk):
        sweep = run_job(engine, settings, clk, "detect_breaches")
        found = run_job(engine, settings, clk, "refresh_findings")
    for change in sweep.changes:
        out.print(str(change), markup=False)
    out.print(
        f"sweep at {show(clk.now(), settings.tz)}: {sweep.looked_at} ticket(s) had a clock past "
        f"its deadline or warning; {len(sweep.changes)} target(s) changed"
    )
    out.print(
        f"findings: {found.looked_at} open ticket(s) checked; "
        f"{found.changed} finding(s) opened or closed"
    )
    for missing in found.calendar:
        out.print(f"calendar_missing (次年日历未载入): {missing}", markup=False)


@breaches_app.command("list")
def breaches_list(
    pending: Annotated[bool, typer.Option("--pending", help="only those not yet reviewed")] = False,
    year: Annotated[int | None, typer.Option("--year", help="tickets reported in YEAR")] = None,
    pool: Annotated[str | None, typer.Option("--pool")] = None,
) -> None:
    """Breaches still standing, with their review state."""

    with reading() as (session, ctx):
        rows = list_breaches(session, pending=pending, year=year, pool=pool, tz=ctx.tz)
        late = {r.breach.id: overrun(session, r.breach, ctx.now())[1] for r in rows}
    for row in rows:
        b, t = row.breach, row.ticket
        out.print(
            f"{b.id:>6}  {t.pool}  {t.external_id or t.id}  {b.severity}/{b.target}  "
            f"deadline {show(b.deadline, ctx.tz)}  detected {show(b.detected_at, ctx.tz)}  "
            f"overrun {human_duration(late[b.id])}  {b.review}",
            markup=False,
        )
    out.print(f"{len(rows)} breach(es)")


@breaches_app.command("review")
def breaches_review(
    breach_id: Annotated[int, typer.Argument(metavar="ID")],
    confirm: Annotated[bool, typer.Option("--confirm")] = False,
    waive: Annotated[bool, typer.Option("--waive")] = False,
    reason: Annotated[str, typer.Option("--reason")] = "",
    reviewer: Annotated[str, typer.Option("--as", help="the reviewer's name")] = "",
) -> None:
    """Confirm a breach, or waive it with a reason; a later review supersedes, both are kept."""

    if confirm == waive:
        raise fail("give exactly one of --confirm or --waive")
    with writing() as flow:
        breach = get_breach(flow.session, breach_id)
        decision = Review.CONFIRMED if confirm else Review.WAIVED
        review = flow.review(breach, decision, reason, reviewer)
    out.print(
        f"breach {breach_id}: {review.decision} by {review.reviewer}"
        + (f" (supersedes review {review.supersedes_id})" if review.supersedes_id else "")
    )


@breaches_app.command("decide-correction")
def breaches_decide_correction(
    ticket_ref: Annotated[str, typer.Argument(metavar="TICKET", help="id or external id")],
    seq: Annotated[int, typer.Argument(metavar="SEQ", help="the correction's #number")],
    accept: Annotated[bool, typer.Option("--accept")] = False,
    reject: Annotated[bool, typer.Option("--reject")] = False,
    reason: Annotated[str, typer.Option("--reason")] = "",
    reviewer: Annotated[str, typer.Option("--as", help="the supervisor's name")] = "",
) -> None:
    """Accept or reject a correction that would clear a reviewed breach (audited)."""
    if accept == reject:
        raise fail("give exactly one of --accept or --reject")
    with writing() as flow:
        ticket = find_ticket(flow.session, ticket_ref)
        decision = CorrectionState.ACCEPTED if accept else CorrectionState.REJECTED
        row = flow.decide_correction(ticket, seq, decision, reason, reviewer)
    out.print(f"correction #{seq} of ticket {ticket_ref}: {row.decision} by {row.actor}")


@app.command("findings")
def findings_cmd(
    open_only: Annotated[bool, typer.Option("--open", help="only open findings")] = False,
) -> None:
    """Data-quality findings for the supervisor."""

    with reading() as (session, ctx):
        rows = list_findings(session, open_only=open_only)
    for f in rows:
        state = "open" if f.closed_at is None else f"closed {show(f.closed_at, ctx.tz)}"
        out.print(
            f"{f.id:>6}  {f.kind} ({KINDS.get(f.kind, '')})  ticket {f.ticket_id or '—'}  "
            f"{state}\n        {f.detail}",
            markup=False,
        )
    out.print(f"{len(rows)} finding(s)")


class ScoreFormat(StrEnum):
    json = "json"
    csv = "csv"
    xlsx = "xlsx"


@app.command("score")
def score_cmd(
    year: Annotated[int, typer.Option("--year")],
    format: Annotated[ScoreFormat, typer.Option("--format")] = ScoreFormat.json,
    out_file: Annotated[Path | None, typer.Option("--out", help="write here, not stdout")] = None,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="judge only what was recorded by then")
    ] = None,
    encoding: Annotated[
        str,
        typer.Option("--encoding", help="csv: utf-8-sig (with BOM, for Excel), utf-8, gb18030"),
    ] = "utf-8-sig",
) -> None:
    """The year-end scoring feed."""

    if format is ScoreFormat.xlsx and out_file is None:
        raise fail("--format xlsx needs --out FILE")
    clock = parse_time_option("--as-of", as_of)
    with (
        reading() as (session, ctx),
        Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            console=err,
            transient=True,
        ) as progress,
    ):
        task = progress.add_task(f"scoring {year}", total=None)
        feed = scoring_feed(
            session,
            ctx,
            year,
            clock.now(),
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        ).model_dump(mode="json")
        vocabulary = words(ctx)
    try:
        download = exporters.score_download(feed, format.value, vocabulary, ctx.tz, encoding)
    except ValueError as exc:
        raise fail(f"--encoding: {exc}") from None
    emit(download.content, out_file)


def emit(content: bytes, out_file: Path | None) -> None:
    """Write a file where asked, or to stdout."""
    if out_file is not None:
        out_file.write_bytes(content)
        out.print(f"wrote {out_file}")
    else:
        sys.stdout.buffer.write(content)
        sys.stdout.flush()


class ReportFormat(StrEnum):
    md = "md"
    xlsx = "xlsx"
    csv = "csv"


@report_app.command("monthly")
def report_monthly(
    month: Annotated[str, typer.Option("--month", help="YYYY-MM")],
    format: Annotated[ReportFormat, typer.Option("--format")] = ReportFormat.md,
    out_file: Annotated[Path | None, typer.Option("--out")] = None,
) -> None:
    """The supervision unit's monthly report, every figure recomputed from raw events
    (csv: the month's breaches)."""

    try:
        year, mon = monthly.parse_month(month)
    except ValueError as exc:
        raise fail(f"--month: {exc}") from None
    if format is ReportFormat.xlsx and out_file is None:
        raise fail("--format xlsx needs --out FILE")
    with reading() as (session, ctx):
        report = monthly.monthly_report(session, ctx, year, mon)
    emit(monthly.monthly_download(report, format.value, ctx.tz).content, out_file)


notifications_app = typer.Typer(help="发给值班人员的通知：查看与重发。", no_args_is_help=True)
app.add_typer(notifications_app, name="notifications")


@notifications_app.command("list")
def notifications_list(
    failed: Annotated[bool, typer.Option("--failed", help="只列出有投递失败的通知")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10000, help="最多列出几条")] = 100,
) -> None:
    """Notices, newest first, with each channel's delivery state."""
    from monitor.notifications.models import (
        DELIVERY_LABELS,
        KIND_LABELS,
        DeliveryStatus,
        NoticeKind,
    )
    from monitor.notifications.routing import EVERYONE
    from monitor.notifications.service import list_notices

    with runtime() as (settings, engine, _), read_scope(engine) as session:
        rows = list_notices(session, failed=failed, limit=limit)
    for row in rows:
        n = row.notice
        what = (
            n.title
            if n.kind == NoticeKind.CALENDAR_MISSING
            else f"{n.ticket_ref} {n.pool_name} {n.severity_name} {n.target_name}"
        )
        kind = KIND_LABELS.get(n.kind, n.kind)
        out.print(f"#{n.id}  {show(n.created_at, settings.tz)}  {kind}  {what}", markup=False)
        if not row.deliveries:
            out.print("    （没有配置接收渠道）", markup=False)
        for d in row.deliveries:
            channel = "SLAMON_NOTIFY_URLS" if d.channel == EVERYONE else d.channel
            line = (
                f"    {channel}  {d.endpoint_label}  {DELIVERY_LABELS.get(d.status, d.status)}"
                f"（{d.attempts} 次尝试"
            )
            if d.status == DeliveryStatus.SENT:
                line += f"，{show(d.sent_at, settings.tz)} 送达）"
            elif d.status == DeliveryStatus.PENDING:
                line += f"，下次 {show(d.next_attempt_at, settings.tz)}）"
            else:
                line += "）"
            if d.status != DeliveryStatus.SENT and d.last_error:
                line += f"  最近错误：{d.last_error}"
            out.print(line, markup=False)
    out.print(f"共 {len(rows)} 条通知" + ("（有投递失败）" if failed else ""), markup=False)


@notifications_app.command("retry")
def notifications_retry(notice_id: Annotated[int, typer.Argument(metavar="ID")]) -> None:
    """Send a notice's failed deliveries again now, with a fresh round of retries."""
    from monitor.notifications.sender import send_due
    from monitor.notifications.service import retry_notice

    with runtime() as (settings, engine, clock):
        with session_scope(engine) as session:
            again = retry_notice(session, notice_id, clock.now())
        if not again:
            out.print(f"通知 #{notice_id} 没有发送失败的投递，无需重发", markup=False)
            return
        report = send_due(engine, settings, clock, notice_id=notice_id)
    if report.errors:
        raise fail(
            f"通知 #{notice_id}：重发 {len(again)} 个投递，{report.sent} 个送达，"
            f"{report.errors} 个仍失败，将按退避计划继续重试"
            "（`sla-monitor notifications list` 查看原因）"
        )
    out.print(f"通知 #{notice_id}：已重发，{report.sent} 个投递送达", markup=False)


def main() -> None:
    """The `sla-monitor` command (and `python -m monitor`)."""
    # The modules imported by now live as long as the command does: frozen, the collector
    # never walks them again, above all in the passes the interpreter makes as it exits
    # (a command that only prints its help: 0.87–0.97 s → 0.62–0.64 s; bench/RESULTS.md,
    # "Twentieth round").
    gc.freeze()
    app(prog_name="sla-monitor")
