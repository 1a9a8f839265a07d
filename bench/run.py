"""The benchmark harness: write side, year end, scheduler wake and reads, on SQLite and
PostgreSQL, each figure printed as one JSON line and the run written to bench/RESULTS.md.

Every throughput figure is measured beside its baseline in the same run: the raw durable
insert rate of the same database (4-row transactions, as many clients) for ingest and import,
a 4-event ticket for appends, the smallest size for size-dependent figures. `POST /tickets`
is also measured against `bench/floor.py` (`http.floor.*`): the same server stack, bodies and
database with none of the product's work, the most this machine answers on this stack.

    .venv/bin/python -m bench.run --quick                      # make bench-quick
    .venv/bin/python -m bench.run                              # make bench (1 M tickets)
    SLAMON_BENCH_POSTGRES_URL=postgresql+psycopg://…/slamon_bench_x  adds PostgreSQL
    SLAMON_BENCH_REPLICAS_URL=…                                adds the three-replica run

The PostgreSQL databases given are emptied first. A large history is better written once
and measured as it is: `python -m bench.history --tickets 1000000 --database sqlite:///F`,
`python -m bench.copy_history --sqlite F --database URL`, then
`python -m bench.run --filled 1000000 --sqlite F --only score,wake` (with the PostgreSQL URL
in SLAMON_BENCH_POSTGRES_URL).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import history  # noqa: E402
from bench.replicas import admin_token, environment, percentile, replicas  # noqa: E402
from bench.results import CpuUse, additions_seconds, machine  # noqa: E402
from monitor.core.clock import FixedClock  # noqa: E402
from monitor.core.db import ensure_schema, make_engine, read_scope, session_scope  # noqa: E402
from monitor.core.settings import Settings  # noqa: E402
from monitor.judging.flow import write_flow  # noqa: E402
from monitor.scheduler.runner import Runner  # noqa: E402
from monitor.scheduler.wake import next_wake  # noqa: E402
from monitor.sla.service import load_context  # noqa: E402
from monitor.tickets.schemas import MAX_TICKETS_PER_BATCH, EventIn, TicketIn  # noqa: E402
from monitor.tickets.service import SYSTEM, find_ticket  # noqa: E402

CONFIG = ROOT / "config"
RESULTS = ROOT / "bench" / "RESULTS.md"
SCORED_YEAR = 2025  # the last full year of the generated history


@dataclass
class Result:
    name: str
    value: float | None
    unit: str
    baseline: float | None
    ratio: float | None
    n: int
    database: str


class Run:
    """One database's benchmarks; every result is printed the moment it is measured."""

    def __init__(
        self,
        url: str,
        results: list[Result],
        work: Path,
        port: int,
        servers: int = 1,
        workers: int = 1,
    ) -> None:
        self.url, self.results, self.work, self.port = url, results, work, port
        self.engine = make_engine(url)
        self.database = self.engine.dialect.name
        # Replicas on ports of their own share only PostgreSQL (README: Running at scale);
        # `serve --workers` shares one port, on either database.
        self.servers = servers if self.database == "postgresql" else 1
        self.workers = workers
        self.settings = Settings(
            database_url=url, config_dir=CONFIG, evidence_dir=work / "evidence"
        )
        self.size = 0

    def report(
        self, name: str, value: float | None, unit: str, n: int, baseline: float | None = None
    ) -> None:
        ratio = value / baseline if value is not None and baseline else None
        result = Result(
            name,
            _round(value),
            unit,
            _round(baseline),
            None if ratio is None else round(ratio, 3),
            n,
            self.database,
        )
        self.results.append(result)
        print(json.dumps(asdict(result), ensure_ascii=False), flush=True)

    # History -------------------------------------------------------------------------------
    def grow(self, size: int) -> float:
        """Extend the generated history to `size` tickets; returns the seconds it took."""
        began = time.perf_counter()
        history.write_history(self.engine, self.settings, size - self.size)
        self.size = size
        took = time.perf_counter() - began
        return took

    # Baselines -----------------------------------------------------------------------------
    def raw_insert(self, clients: int, seconds: float) -> float:
        """Events/s the database itself commits durably, 4 rows per transaction."""
        ph = "?" if self.database == "sqlite" else "%s"
        with self.engine.begin() as conn:
            conn.exec_driver_sql(
                "CREATE TABLE bench_raw (ticket INTEGER, seq INTEGER, type VARCHAR(32), "
                "at VARCHAR(40), note TEXT)"
            )
        began = time.monotonic()
        stop = began + seconds
        counts = [0] * clients

        def client(k: int) -> None:
            with self.engine.connect() as conn:
                i = 0
                while time.monotonic() < stop:
                    rows = [
                        (k, i * 4 + j, "reported", datetime.now(UTC).isoformat(), "")
                        for j in range(4)
                    ]
                    with conn.begin():
                        conn.exec_driver_sql(
                            f"INSERT INTO bench_raw VALUES ({ph}, {ph}, {ph}, {ph}, {ph})", rows
                        )
                    i += 1
                counts[k] = i * 4

        _threads(client, clients)
        took = time.monotonic() - began  # (the last transactions end after the stop)
        with self.engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE bench_raw")
        return sum(counts) / took

    # Size-dependent figures ----------------------------------------------------------------
    def score(self, baseline: float | None) -> float:
        """Wall time of `sla-monitor score --year` as a user runs it."""
        env = {**os.environ, "SLAMON_DATABASE_URL": self.url, "SLAMON_CONFIG_DIR": str(CONFIG)}
        began = time.perf_counter()
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "monitor",
                "score",
                "--year",
                str(SCORED_YEAR),
                "--out",
                str(self.work / "score.json"),
            ],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        took = time.perf_counter() - began
        if done.returncode != 0:
            raise RuntimeError(done.stderr)
        self.report("score.year", took, "s", self.size, baseline)
        return took

    def wake(self, baseline: float | None) -> float:
        """One scheduler wake as the leader runs it, median of 5: the clock moved to the next
        deadline or warning instant (a clock does run out), then `Runner.sweep` with the
        context the runner keeps (the breach sweep, its job record, the next wake armed)."""
        clock = FixedClock(history.NOW)
        runner = Runner(self.engine, self.settings, clock, holder="bench")
        runner.is_leader = True
        with session_scope(self.engine) as session:
            runner.contexts.get(session)  # as Runner.start does
        timings = []
        for _ in range(5):
            with read_scope(self.engine) as session:
                due = next_wake(session)
            clock.at = max(due or clock.at, clock.at + timedelta(seconds=1))
            began = time.perf_counter()
            runner.sweep()
            timings.append(time.perf_counter() - began)
        value = statistics.median(timings) * 1000
        self.report("scheduler.wake", value, "ms", self.size, baseline)
        return value

    # Appends -------------------------------------------------------------------------------
    def append(self, length: int) -> None:
        """Append one event to a ticket of `length` events, beside one of 4 events."""
        base = datetime(2026, 10, 1, tzinfo=UTC)
        long_events: list[dict[str, Any]] = [{"type": "reported", "at": base.isoformat()}]
        for i in range(1, length):
            kind = "resolved" if i % 2 else "reopened"
            long_events.append({"type": kind, "at": (base + timedelta(seconds=30 * i)).isoformat()})
        tickets = {
            "long": {
                "external_id": "BENCH-LONG",
                "pool": "pool1",
                "severity": "general",
                "title": "长时间线",
                "events": long_events,
            },
            "short": {
                "external_id": "BENCH-SHORT",
                "pool": "pool1",
                "severity": "general",
                "title": "短时间线",
                "events": long_events[:4],
            },
        }
        clock = FixedClock(history.NOW)
        # The per-ticket limit is a setting; this measures what an append costs beyond it.
        settings = self.settings.model_copy(update={"max_events_per_ticket": length + 100})
        with session_scope(self.engine) as session:
            ctx = load_context(session, settings, clock)
        writer = history.Writer(ctx, history.NOW, history._counters(self.engine))
        rows = history.Rows()
        for raw in tickets.values():
            # Longer than one request may carry: built here, as a long-lived ticket grows.
            events = [EventIn.model_validate(e) for e in raw["events"]]
            writer.add(
                rows,
                TicketIn.model_validate({**raw, "events": events[:1]}).model_copy(
                    update={"events": events}
                ),
            )
        history._flush(self.engine, rows)
        history._after_bulk(self.engine)
        timings: dict[str, float] = {}
        for key, raw in tickets.items():
            last = datetime.fromisoformat(raw["events"][-1]["at"])
            runs = []
            for i in range(5):
                kind = "reopened" if (len(raw["events"]) + i) % 2 else "resolved"
                began = time.perf_counter()
                with session_scope(self.engine) as session:
                    c = load_context(session, settings, clock)
                    ticket = find_ticket(session, raw["external_id"])
                    event = EventIn(type=kind, at=last + timedelta(seconds=30 * (i + 1)))
                    with write_flow(session, c) as flow:
                        flow.add_event(ticket, event, SYSTEM)
                runs.append(time.perf_counter() - began)
            timings[key] = statistics.median(runs) * 1000
        self.report(f"append.to_{length}_events", timings["long"], "ms", length, timings["short"])

    # HTTP ----------------------------------------------------------------------------------
    def http(self, seconds: float, raw: dict[int, float]) -> None:
        """Real servers: ticket search and page p95, then POST /tickets with 1 and 4 clients
        (client k posting to server k mod `servers`, as a round-robin load balancer would)."""
        env = environment(self.url, CONFIG, self.work, 15)
        token = admin_token(self.engine)
        headers = {"Authorization": f"Bearer {token}"}
        ports = [self.port + i for i in range(self.servers)]
        with replicas(env, ports, self.work, workers=self.workers) as group:
            bases = [f"{server.url}/api/v1" for server in group]
            base = bases[0]
            with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
                queries = [
                    {"q": "故障"},
                    {"pool": "pool2", "status": "open"},
                    {"severity": "major", "breached": "true"},
                    {"q": "DX-00001"},
                    {
                        "reported_from": "2024-03-01T00:00:00+08:00",
                        "reported_to": "2024-03-31T23:59:59+08:00",
                    },
                ]
                search = [_timed(lambda q=q: client.get("/tickets", params=q)) for q in queries * 8]
                self.report("api.search_p95", percentile(search, 0.95) * 1000, "ms", self.size)
                ids = [1 + (i * 7919) % max(1, self.size) for i in range(40)]
                page = [_timed(lambda i=i: client.get(f"/tickets/{i}")) for i in ids]
                self.report("api.ticket_page_p95", percentile(page, 0.95) * 1000, "ms", self.size)
            roots = [server.proc.pid for server in group]
            for clients in (1, 4):
                self._ingest(bases, headers, clients, seconds, raw[clients], roots=roots)
            for size in BATCHES:
                for clients in (1, 4):
                    self._ingest(
                        bases, headers, clients, seconds, raw[clients], batch=size, roots=roots
                    )
        self.floor(seconds, raw)

    def floor(self, seconds: float, raw: dict[int, float]) -> None:
        """The same clients and bodies against `bench/floor.py` (this server stack and this
        database with none of the product's work), from one process: the most any
        implementation on this stack answers on this machine."""
        env = {**os.environ, "SLAMON_BENCH_FLOOR_URL": self.url}
        app = "bench.floor:from_environment"
        with replicas(env, [self.port + 20], self.work, app=app) as group:
            base = f"{group[0].url}/api/v1"
            for clients in (1, 4):
                roots = [group[0].proc.pid]
                self._ingest([base], {}, clients, seconds, raw[clients], "floor", roots=roots)
        with self.engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE bench_floor")

    def _ingest(
        self,
        bases: list[str],
        headers: dict[str, str],
        clients: int,
        seconds: float,
        raw: float,
        what: str = "post_tickets",
        batch: int = 1,
        roots: list[int] | None = None,
    ) -> None:
        """`clients` threads posting tickets for `seconds`, one a request (`batch` 1) or
        `batch` a request to `POST /tickets/batch`; with `roots`, the servers' processes,
        where the CPU went, per ticket (`CpuUse`)."""
        if batch > 1:
            what = f"post_tickets_batch_{batch}"
        path = "/tickets/batch" if batch > 1 else "/tickets"
        latencies: list[list[float]] = [[] for _ in range(clients)]
        events = [0] * clients
        posted = [0] * clients  # tickets
        now = datetime.now(UTC)
        first = 30_000_000 + clients * 1_000_000
        # Bodies made before the clock starts, each sent with its own external id: the
        # clients share one Python process with this benchmark, and making a body per request
        # held the floor (below) to 240 tickets/s on a machine where it answers 400.
        made = [
            [
                (_json_with_id(d), len(d["events"]))
                for d in (
                    history.draft(history.SEED, first + k * 100_000 + i, now) for i in range(BODIES)
                )
            ]
            for k in range(clients)
        ]
        started = time.monotonic()
        stop = started + seconds

        def client(k: int) -> None:
            sent = {**headers, "Content-Type": "application/json"}
            with _Poster(bases[k % len(bases)] + path, sent) as post:
                i = 0
                while time.monotonic() < stop:
                    bodies, count = [], 0
                    for j in range(i, i + batch):
                        template, n = made[k][j % BODIES]
                        tag = json.dumps(f"HTTP-{what}-{clients}-{k}-{j}").encode()
                        bodies.append(template.replace(ID, tag))
                        count += n
                    body = bodies[0] if batch == 1 else b'{"tickets":[' + b",".join(bodies) + b"]}"
                    began = time.perf_counter()
                    status, answer = post(body)
                    latencies[k].append(time.perf_counter() - began)
                    if status != 201:
                        raise RuntimeError(f"POST {path} answered {status}: {answer[:500]!r}")
                    posted[k] += batch
                    events[k] += count
                    i += batch

        cpu = CpuUse(roots or [])
        _threads(client, clients)
        # Every answer counted, to the last one's end: each client's last request, sent
        # before the stop, is answered after it (a batch of 100 about a tenth of a second).
        took = time.monotonic() - started
        spent = cpu.spent() if roots else None
        tickets = sum(posted)
        every = [x for xs in latencies for x in xs]  # one a request
        name = f"http.{what}.{clients}_client{'s' if clients > 1 else ''}"
        if self.servers > 1 and what.startswith("post_tickets"):
            name += f".{self.servers}_servers"
        if self.workers > 1 and what.startswith("post_tickets"):
            name += f".{self.workers}_workers"
        self.report(f"{name}.tickets_per_s", tickets / took, "tickets/s", tickets)
        self.report(f"{name}.events_per_s", sum(events) / took, "events/s", tickets, raw)
        self.report(f"{name}.p99", percentile(every, 0.99) * 1000, "ms", len(every))
        if spent is not None and tickets:
            # (SQLite's work is the server's own: it runs in the server's processes.)
            parts = ("server", "client", "database")[: 3 if self.database == "postgresql" else 2]
            for part in parts:
                per = spent[part] * 1000 / tickets
                self.report(f"{name}.{part}_cpu_per_ticket", per, "ms", tickets)
            self.report(f"{name}.machine_busy", spent["busy"] * 100, "%", tickets)

    def speed_before(self, what: str) -> None:
        """`speed.before_<what>`: seconds of CPU a loop of 10 million additions took just
        now (`results.speed`; more is slower)."""
        self.report(f"speed.before_{what}", additions_seconds(), "s", 10_000_000)

    # Import --------------------------------------------------------------------------------
    def import_file(self, count: int, raw: float, *, into_empty: bool = False) -> None:
        """`sla-monitor import` of `count` generated tickets into the database as the run
        left it; then, with `into_empty`, the same file into the database emptied, as a
        province's history goes into a new installation (the run's last step: it drops
        what the run wrote)."""
        source = self.work / "import.json"
        events = 0
        tickets = [history.draft(history.SEED, 40_000_000 + n, history.NOW) for n in range(count)]
        for t in tickets:
            t["external_id"] = "IMP-" + t["external_id"]
            events += len(t["events"])
        source.write_text(json.dumps({"tickets": tickets}, ensure_ascii=False), encoding="utf-8")
        took, peak = self._import(source)
        self.report("import.events_per_s", events / took, "events/s", count, raw)
        self.report("import.peak_memory", peak, "MB", count)
        if into_empty:
            self.engine.dispose()
            empty(self.url)
            took, _ = self._import(source)
            self.report("import.empty_database.events_per_s", events / took, "events/s", count, raw)

    def _import(self, source: Path) -> tuple[float, float]:
        """Seconds `sla-monitor import` of the file took, the process's start included, and
        the most memory one of its processes held (MB): the largest peak resident set of
        the writer and its worker processes (as `wait4` reports it on Linux), not their sum,
        whose pages they partly share."""
        env = {**os.environ, "SLAMON_DATABASE_URL": self.url, "SLAMON_CONFIG_DIR": str(CONFIG)}
        began = time.perf_counter()
        with tempfile.TemporaryFile() as output:
            proc = subprocess.Popen(
                [sys.executable, "-m", "monitor", "import", str(source)],
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
            try:
                _, status, usage = os.wait4(proc.pid, 0)  # (not the bench's other children)
            except BaseException:  # (interrupted: the import must not run on unwatched)
                proc.kill()
                proc.wait()
                raise
            took = time.perf_counter() - began
            if os.waitstatus_to_exitcode(status) != 0:
                output.seek(0)
                raise RuntimeError(output.read().decode(errors="replace"))
        return took, usage.ru_maxrss / 1024  # (kB on Linux)


# The generated tickets each client cycles through (a new external id on every POST), and the
# placeholder their JSON holds for that id.
BODIES = 500
# Tickets a request to POST /tickets/batch, as a ticket system catching up would send them:
# few enough to keep four clients' p99 near 100 ms, and enough to show what a batch can do;
# and the most a request takes, as one sends a backlog (the write side's own rate, which the
# raw insert rate beside it bounds: each request's fixed cost shared by a hundred tickets).
BATCHES = (5, 20, MAX_TICKETS_PER_BATCH)
ID = b'"@external_id@"'


def _json_with_id(ticket: dict[str, Any]) -> bytes:
    """The ticket as the JSON a client sends (as httpx encodes it), its id a placeholder."""
    body = {**ticket, "external_id": json.loads(ID)}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3 if value < 10 else 1)


class _Poster:
    """One client's keep-alive connection that POSTs a body and reads the whole answer, by
    the standard library's `http.client`: the load generator shares the server's two cores,
    and an httpx request cost it 0.45 ms of CPU where this costs 0.14 ms (the server's
    work is the same; what the clients spend is reported beside each figure)."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        parts = urlsplit(url)
        self.path = parts.path
        self.headers = headers
        self.connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=60)

    def __call__(self, body: bytes) -> tuple[int, bytes]:
        self.connection.request("POST", self.path, body=body, headers=self.headers)
        answer = self.connection.getresponse()
        return answer.status, answer.read()

    def __enter__(self) -> _Poster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.connection.close()


def _timed(call: Callable[[], httpx.Response]) -> float:
    began = time.perf_counter()
    r = call()
    took = time.perf_counter() - began
    if r.status_code != 200:
        raise RuntimeError(f"{r.request.url} answered {r.status_code}")
    return took


def _threads(target: Callable[[int], None], count: int) -> None:
    errors: list[BaseException] = []

    def run(k: int) -> None:
        try:
            target(k)
        except BaseException as exc:  # reported after the join
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def empty(url: str) -> None:
    """The database with its schema and nothing else (an SQLite file is made anew)."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            name.unlink(missing_ok=True)
    engine = make_engine(url)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    ensure_schema(engine)
    engine.dispose()


def bench_database(
    url: str,
    plan: Plan,
    results: list[Result],
    port: int,
    only: set[str] | None = None,
    filled: int = 0,
    servers: int = 1,
    workers: int = 1,
) -> dict[str, float]:
    """Everything for one database (or `only` some groups); returns how long the history took
    to write. With `filled`, the database already holds that many generated tickets."""

    def wanted(group: str) -> bool:
        return only is None or group in only

    work = Path(tempfile.mkdtemp(prefix="slamon-bench-"))
    if not filled:
        empty(url)
    run = Run(url, results, work, port, servers, workers)
    took = {}
    score_base = wake_base = None
    for size in [filled] if filled else plan.sizes:
        if filled:
            run.size = filled
        else:
            took[f"{size:,} tickets"] = run.grow(size)
        if wanted("score"):
            score = run.score(score_base)
            score_base = score_base or score
        if wanted("wake"):
            wake = run.wake(wake_base)
            wake_base = wake_base or wake
    raw = {}
    if wanted("raw") or wanted("http") or wanted("import"):
        # The machine's speed as this database's write figures begin, and again before its
        # import (`speed_before`): the heading's is the run's start, and one database's part
        # may run in a slower moment than the other's.
        run.speed_before("write")
        for clients in (1, 4):
            raw[clients] = run.raw_insert(clients, plan.seconds)
            run.report(
                f"raw_insert.{clients}_client{'s' if clients > 1 else ''}",
                raw[clients],
                "events/s",
                clients,
            )
    if wanted("append"):
        run.append(plan.append_length)
    if wanted("http"):
        run.http(plan.seconds, raw)
    if wanted("import"):
        run.speed_before("import")
        # Into an empty database too, unless it was filled beforehand (kept for the next run).
        run.import_file(plan.import_tickets, raw[1], into_empty=not filled)
    run.engine.dispose()
    return took


@dataclass
class Plan:
    label: str
    sizes: list[int]
    seconds: float
    append_length: int
    import_tickets: int


GROUPS = ("score", "wake", "raw", "append", "http", "import")
QUICK = Plan("quick sizes", [1_000, 4_000], 2.5, 500, 300)
FULL = Plan("full size", [10_000, 100_000, 1_000_000], 20.0, 10_000, 20_000)


def machine_and_load() -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{machine()}; load average at the start {load}"


def write_results(title: str, lines: list[str]) -> None:
    """Replace this run's section of RESULTS.md (or add it), keeping every other section."""
    head = f"### {title}"
    old = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n"
    if head in old:
        before, after = old.split(head, 1)
        rest = after.split("\n### ", 1)
        old = before.rstrip() + ("\n\n### " + rest[1] if len(rest) > 1 else "")
    RESULTS.write_text(old.rstrip() + "\n\n" + "\n".join([head, "", *lines]) + "\n", "utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a few minutes")
    parser.add_argument("--label", default="", help="added to the RESULTS.md heading")
    parser.add_argument(
        "--sqlite",
        default=None,
        help="SQLite file (default: a fresh one); emptied first unless --filled",
    )
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--port", type=int, default=8630)
    parser.add_argument(
        "--servers",
        type=int,
        default=1,
        help="PostgreSQL: serve the HTTP figures from this many server processes (ports "
        "--port, --port+1, …); SQLite always from one",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="serve the HTTP figures by `sla-monitor serve --workers` this many (both "
        "databases; default: one per core, as README's Running at scale advises)",
    )
    parser.add_argument("--sizes", help="history sizes, e.g. 10000,100000")
    parser.add_argument("--seconds", type=float, help="length of each throughput run")
    parser.add_argument("--import-tickets", type=int)
    parser.add_argument("--append-length", type=int)
    parser.add_argument(
        "--only", help=f"some of {','.join(GROUPS)} (default: all); e.g. score,wake"
    )
    parser.add_argument(
        "--filled",
        type=int,
        default=0,
        help="the databases (--sqlite FILE, SLAMON_BENCH_POSTGRES_URL) already hold this many "
        "generated tickets (bench.history, bench.copy_history): measure them as they are",
    )
    args = parser.parse_args()
    only = set(args.only.split(",")) if args.only else None
    if only and only - set(GROUPS):
        parser.error(f"--only: unknown {', '.join(sorted(only - set(GROUPS)))}")
    if args.filled and not args.sqlite:
        args.no_sqlite = True
    plan = QUICK if args.quick else FULL
    if args.filled:
        plan = Plan(
            "filled history", [args.filled], plan.seconds, plan.append_length, plan.import_tickets
        )
    if args.sizes or args.seconds or args.import_tickets or args.append_length:
        plan = Plan(
            "custom sizes",
            [int(x) for x in args.sizes.split(",")] if args.sizes else plan.sizes,
            args.seconds or plan.seconds,
            args.append_length or plan.append_length,
            args.import_tickets or plan.import_tickets,
        )
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    about = machine_and_load()
    results: list[Result] = []
    filled = {}
    urls = []
    if not args.no_sqlite:
        path = args.sqlite or f"{tempfile.mkdtemp(prefix='slamon-bench-')}/bench.db"
        urls.append(f"sqlite:///{path}")
    if os.environ.get("SLAMON_BENCH_POSTGRES_URL"):
        urls.append(os.environ["SLAMON_BENCH_POSTGRES_URL"])
    for url in urls:
        name = make_engine(url).dialect.name
        filled[name] = bench_database(
            url, plan, results, args.port, only, args.filled, args.servers, args.workers
        )
    replica_url = os.environ.get("SLAMON_BENCH_REPLICAS_URL")
    replica_note = []
    if replica_url:
        replica_note = bench_replicas(replica_url, results, args.port + 10)
    end_load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    lines = [
        f"- machine: {about}, at the end {end_load}; shared with other work while it ran",
        f"- measured: {started}; commit {_commit()}",
        (
            f"- history: {args.filled:,} generated tickets written beforehand "
            "(bench.history; PostgreSQL by bench.copy_history from the SQLite file)"
            if args.filled
            else "- history written: "
            + "; ".join(
                f"{db} " + ", ".join(f"{k} in {v:.0f} s" for k, v in took.items())
                for db, took in filled.items()
            )
        ),
        *([f"- figures: {', '.join(sorted(only))} only"] if only else []),
        *replica_note,
        "",
        "| name | database | n | value | unit | baseline | ratio |",
        "|---|---|---|---|---|---|---|",
        *[
            f"| {r.name} | {r.database} | {r.n:,} | {r.value} | {r.unit} | "
            f"{'' if r.baseline is None else r.baseline} | {'' if r.ratio is None else r.ratio} |"
            for r in results
        ],
    ]
    label = f" — {args.label}" if args.label else ""
    write_results(f"Write side, year end, wake and reads ({plan.label}){label}", lines)


def bench_replicas(url: str, results: list[Result], port: int) -> list[str]:
    from bench.replicas import run as scenario

    empty(url)
    o = scenario(url, ports=[port, port + 1, port + 2], lease_seconds=1.0)
    every = list(o.latency.values())
    around = o.planted_latencies()
    common = {"n": len(o.acknowledged), "database": "postgresql", "baseline": None, "ratio": None}
    for name, value in (
        ("replicas.takeover", o.takeover_seconds),
        ("replicas.detection_p99", percentile(every, 0.99) if every else None),
        ("replicas.detection_max_around_takeover", max(around) if around else None),
    ):
        result = Result(name=name, value=_round(value), unit="s", **common)  # type: ignore[arg-type]
        results.append(result)
        print(json.dumps(asdict(result)), flush=True)
    return [
        f"- three replicas, lease 1 s, kill -9 of the leader: {len(o.acknowledged)} tickets "
        f"acknowledged, {len(o.breaches)} breaches, equal to a one-process replay: "
        f"{'yes' if o.breaches == o.replayed else 'NO'}; each recorded once: "
        f"{'yes' if o.detected_records == o.distinct_detected == o.breach_rows else 'NO'}"
    ]


def _commit() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    )
    return done.stdout.strip() or "unknown"


if __name__ == "__main__":
    main()
