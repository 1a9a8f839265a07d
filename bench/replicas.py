"""Three replicas on one PostgreSQL: one scheduler leader, a kill -9 of it, and the breaches.

Starts three `sla-monitor serve` processes against one database with a short lease, spreads
writers over all three (tickets whose one-minute clocks run out a few seconds after they are
posted, a third of them answered in time through another replica), kills the leader with
SIGKILL and measures how long the lease takes to move and how late breaches are detected
meanwhile. The test in tests/scheduler/test_replicas.py asserts on the same scenario; run as a
script it prints the benchmark's JSON lines.

    .venv/bin/python -m bench.replicas --database postgresql+psycopg://…/an_empty_database
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from sqlmodel import col, select

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.results import POLICY  # noqa: E402
from monitor.auth.service import create_token  # noqa: E402
from monitor.core.clock import FixedClock  # noqa: E402
from monitor.core.db import ensure_schema, make_engine, session_scope  # noqa: E402
from monitor.core.settings import Settings  # noqa: E402
from monitor.judging.flow import write_flow  # noqa: E402
from monitor.sla.service import load_context  # noqa: E402
from monitor.tickets.schemas import TicketIn  # noqa: E402
from monitor.tickets.service import SYSTEM  # noqa: E402

CLOCK_SPAN = timedelta(seconds=60)  # the policy's arrival target: 1 minute


@dataclass
class Replica:
    port: int
    proc: subprocess.Popen[bytes]
    alive: bool = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def holder(self) -> str | None:
        """The opaque name this replica's scheduler uses for the lease."""
        try:
            body = httpx.get(f"{self.url}/readyz", timeout=5).json()
        except (httpx.HTTPError, ValueError):
            return None
        return body.get("scheduler", {}).get("holder")

    def is_leader(self) -> bool | None:
        """What the replica says of itself, or None if it does not answer."""
        try:
            body = httpx.get(f"{self.url}/readyz", timeout=2).json()
        except (httpx.HTTPError, ValueError):
            return None
        return bool(body.get("scheduler", {}).get("leader"))


@dataclass
class Outcome:
    """What happened; the test asserts on it and the benchmark reports it."""

    lease_seconds: float
    leaders_before: list[bool | None]
    killed_at: float
    takeover_seconds: float
    leaders_after: list[bool | None]
    acknowledged: list[str] = field(default_factory=list)
    stored: list[str] = field(default_factory=list)
    # (external_id, target, deadline) of each standing breach, and how late it was detected
    breaches: list[tuple[str, str, datetime]] = field(default_factory=list)
    latency: dict[tuple[str, str], float] = field(default_factory=dict)
    deadlines: dict[tuple[str, str], float] = field(default_factory=dict)
    detected_records: int = 0  # breach.detected audit records
    distinct_detected: int = 0  # of distinct breaches
    breach_rows: int = 0  # breach rows, cleared ones included
    replayed: list[tuple[str, str, datetime]] = field(default_factory=list)
    # the tickets whose clocks were planted to run out while the leader was dead
    planted: list[str] = field(default_factory=list)

    def planted_latencies(self) -> list[float]:
        return [v for (ref, _), v in self.latency.items() if ref in self.planted]


def _threads(target: Any, items: list[str]) -> None:
    threads = [threading.Thread(target=target, args=(item,)) for item in items]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def config_dir(work: Path) -> Path:
    config = work / "config"
    shutil.copytree(ROOT / "config", config)
    (config / "sla.yaml").write_text(POLICY, encoding="utf-8")
    return config


def environment(url: str, config: Path, work: Path, lease_seconds: float) -> dict[str, str]:
    return {
        **os.environ,
        "SLAMON_DATABASE_URL": url,
        "SLAMON_CONFIG_DIR": str(config),
        "SLAMON_EVIDENCE_DIR": str(work / "evidence"),
        "SLAMON_LEASE_SECONDS": str(lease_seconds),
    }


def admin_token(engine: sa.Engine) -> str:
    """An admin's token, written as `sla-monitor token create --role admin` writes it; in
    this process, where starting that command costs a second of every scenario."""
    with session_scope(engine) as session:
        _, value = create_token(
            session, name="admin", role="admin", pool=None, known_pools=[], now=datetime.now(UTC)
        )
    return value


@contextmanager
def replicas(
    env: dict[str, str], ports: list[int], log_dir: Path, app: str = "", workers: int = 1
) -> Iterator[list[Replica]]:
    """Start one server per port and wait until each answers; stop the survivors after.
    `app` serves that application factory by uvicorn instead of `sla-monitor serve`;
    `workers` is `serve --workers`."""
    started = []
    for port in ports:
        log = (log_dir / f"serve-{port}.log").open("wb")
        command = (
            ["-m", "uvicorn", "--factory", app, "--port", str(port), "--no-access-log"]
            if app
            else ["-m", "monitor", "serve", "--port", str(port), "--workers", str(workers)]
        )
        proc = subprocess.Popen(
            [sys.executable, *command],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        started.append(Replica(port, proc))
    try:
        deadline = time.monotonic() + 90
        for r in started:
            while True:
                try:
                    if httpx.get(f"{r.url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or r.proc.poll() is not None:
                    raise RuntimeError(f"the server on port {r.port} did not start")
                time.sleep(0.1)
        yield started
    finally:
        for r in started:
            if r.proc.poll() is None:
                r.proc.send_signal(signal.SIGTERM)
        for r in started:
            try:
                r.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                r.proc.kill()


def await_leaders(group: list[Replica], timeout: float) -> list[bool | None]:
    """Poll until exactly one live replica says it leads; returns what each said."""
    deadline = time.monotonic() + timeout
    while True:
        said = [r.is_leader() if r.alive else None for r in group]
        if said.count(True) == 1 or time.monotonic() > deadline:
            return said
        time.sleep(0.05)


def due_ticket(ref: str, deadline: float, title: str) -> dict[str, Any]:
    """A major fault whose arrival clock runs out at `deadline` (a Unix time)."""
    reported = datetime.fromtimestamp(deadline, UTC) - CLOCK_SPAN
    return {
        "external_id": ref,
        "pool": "pool2",
        "severity": "major",
        "title": title,
        "events": [{"type": "reported", "at": reported.isoformat()}],
    }


class Writers:
    """One writer per replica; a writer whose replica dies moves to the next live one, as a
    load balancer would send it. Every ticket's clock runs out 2–4 s after it is posted."""

    def __init__(self, group: list[Replica], token: str) -> None:
        self.group, self.headers = group, {"Authorization": f"Bearer {token}"}
        self.acknowledged: list[str] = []
        self.acked_at: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(len(group))
        ]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)

    def _post(self, start: int, path: str, body: dict[str, Any]) -> httpx.Response | None:
        for k in range(len(self.group)):
            replica = self.group[(start + k) % len(self.group)]
            if not replica.alive:
                continue
            try:
                return httpx.post(
                    f"{replica.url}/api/v1{path}", json=body, headers=self.headers, timeout=10
                )
            except httpx.HTTPError:
                continue
        return None

    def due_at(self, ref: str, deadline: float, start: int) -> None:
        """One ticket whose clock runs out at `deadline` (a Unix time)."""
        r = self._post(start, "/tickets", due_ticket(ref, deadline, "takeover"))
        if r is not None and r.status_code == 201:
            with self._lock:
                self.acknowledged.append(ref)
                self.acked_at[ref] = time.time()

    def _run(self, n: int) -> None:
        i = 0
        while not self._stop.is_set():
            i += 1
            ref = f"R{n}-{i:04d}"
            ahead = 2 + (i * 7 % 20) / 10  # 2.0 … 3.9 s
            reported = datetime.now(UTC) - CLOCK_SPAN + timedelta(seconds=ahead)
            body = {
                "external_id": ref,
                "pool": "pool1",
                "severity": "major",
                "title": f"replica {n}",
                "events": [{"type": "reported", "at": reported.isoformat()}],
            }
            r = self._post(n, "/tickets", body)
            if r is None or r.status_code != 201:
                continue
            with self._lock:
                self.acknowledged.append(ref)
                self.acked_at[ref] = time.time()
            if i % 3 == 0:
                # Answered in time, through another replica than the one that created it.
                arrived = {"type": "arrived", "at": datetime.now(UTC).isoformat()}
                self._post(n + 1, f"/tickets/{r.json()['id']}/events", arrived)
            self._stop.wait(0.05)


@contextmanager
def scenario(
    url: str, lease_seconds: float
) -> Iterator[tuple[Path, Path, dict[str, str], sa.Engine, str]]:
    """A scenario's folder, config, environment, engine and admin token on an empty
    database; the folder is removed after (unless SLAMON_BENCH_KEEP is set)."""
    work = Path(tempfile.mkdtemp(prefix="slamon-replicas-"))
    config = config_dir(work)
    env = environment(url, config, work, lease_seconds)
    engine = make_engine(url)
    ensure_schema(engine)
    try:
        yield work, config, env, engine, admin_token(engine)
    finally:
        engine.dispose()
        if not os.environ.get("SLAMON_BENCH_KEEP"):
            shutil.rmtree(work, ignore_errors=True)


def judged(
    outcome: Outcome, engine: sa.Engine, config: Path, work: Path, acked_at: dict[str, float]
) -> Outcome:
    """The outcome with what the database holds and what one process would have found."""
    collect(engine, outcome, acked_at)
    outcome.replayed = replay(engine, config, work)
    return outcome


def run(
    url: str,
    *,
    ports: list[int],
    lease_seconds: float = 1.0,
    write_seconds: float = 12.0,
    plant_seconds: float = 5.0,
) -> Outcome:
    """The whole scenario on an empty PostgreSQL database. The clocks planted to run out
    while the leader is dead are posted `plant_seconds` before the kill (the test, whose
    writers are fewer and shorter, needs less than the benchmark)."""
    with scenario(url, lease_seconds) as (work, config, env, engine, token):
        with replicas(env, ports, work) as group:
            leaders_before = await_leaders(group, timeout=10 * lease_seconds + 10)
            writers = Writers(group, token)
            writers.start()
            time.sleep(write_seconds / 3)  # the load runs a while before the leader dies
            holder = lease_holder(engine)
            leader = next((r for r in group if r.holder() == holder), group[0])
            # Clocks that run out while the leader is dead, 0.1–1.5 s after the kill, posted
            # at once; on a machine so loaded that they are not all in by the planned kill,
            # a new batch is planted further ahead.
            start = group.index(leader) + 1
            for attempt in range(3):
                kill_at = time.time() + plant_seconds * (attempt + 1)
                # One prefix for every batch: a batch too late is stored too.
                batch = {f"T-{attempt}{k}": kill_at + 0.1 + 0.2 * k for k in range(8)}
                _threads(lambda ref, at=batch: writers.due_at(ref, at[ref], start), list(batch))
                if time.time() < kill_at - 0.05:
                    break
            planted = list(batch)
            time.sleep(max(0.0, kill_at - time.time()))
            leader.proc.send_signal(signal.SIGKILL)
            killed_at = time.time()
            leader.alive = False
            leader.proc.wait(timeout=10)
            # The takeover is when the lease row names another holder (read straight from the
            # database: asking the loaded replicas over HTTP would add their answer time).
            while lease_holder(engine) == holder and time.time() - killed_at < 30:
                time.sleep(0.02)
            takeover = time.time() - killed_at
            leaders_after = await_leaders(group, timeout=10 * lease_seconds + 10)
            time.sleep(max(0.0, write_seconds * 2 / 3 - takeover))
            writers.stop()
            # The last clocks run out ≤ 4 s after the last post.
            await_clocks_out(engine)
        outcome = Outcome(
            lease_seconds=lease_seconds,
            leaders_before=leaders_before,
            killed_at=killed_at,
            takeover_seconds=takeover,
            leaders_after=leaders_after,
            acknowledged=sorted(writers.acknowledged),
            planted=planted,
        )
        return judged(outcome, engine, config, work, writers.acked_at)


def workers_run(
    url: str, *, port: int, workers: int = 2, writers: int = 4, write_seconds: float = 4.0
) -> Outcome:
    """One `serve --workers` on an empty database (SQLite or PostgreSQL): `writers` clients
    post through its one port, the kernel handing their connections to either process, while
    tickets' clocks run out 2–4 s after each post. Every worker must answer, one of them
    lead, and the breaches be those of a one-process replay, each detected once and in time,
    whichever process wrote its ticket."""
    with scenario(url, 15) as (work, config, env, engine, token):
        with replicas(env, [port], work, workers=workers) as group:
            server = group[0]
            leaders = _each_worker(server, workers, timeout=30)
            load = Writers([server] * writers, token)
            load.start()
            time.sleep(write_seconds)
            load.stop()
            # The last clocks run out ≤ 4 s after the last post.
            await_clocks_out(engine)
            # Then, with nothing else due, clocks written only by a process that does not
            # lead: the leader learns of them from the database alone.
            planted = {f"F-{k}": time.time() + 2 + k / 2 for k in range(2)}
            for ref, deadline in planted.items():
                _through_follower(server, token, ref, deadline, load.acked_at)
            await_clocks_out(engine)
            leaders_after = _each_worker(server, workers, timeout=30)
        outcome = Outcome(
            lease_seconds=15,
            leaders_before=leaders,
            killed_at=0.0,
            takeover_seconds=0.0,
            leaders_after=leaders_after,
            acknowledged=sorted([*load.acknowledged, *planted]),
            planted=list(planted),
        )
        return judged(outcome, engine, config, work, load.acked_at)


def _through_follower(
    server: Replica, token: str, ref: str, deadline: float, acked_at: dict[str, float]
) -> None:
    """Post a ticket whose clock runs out at `deadline` over a connection that a process not
    leading answers (its /readyz says so on the same connection)."""
    body = due_ticket(ref, deadline, "follower")
    headers = {"Authorization": f"Bearer {token}"}
    for _ in range(200):
        with httpx.Client(base_url=server.url, headers=headers, timeout=10) as client:
            if client.get("/readyz").json()["scheduler"]["leader"]:
                continue  # the leader took this connection: another one
            r = client.post("/api/v1/tickets", json=body)
            r.raise_for_status()
            acked_at[ref] = time.time()
            return
    raise RuntimeError("no connection reached a process that does not lead")


def _each_worker(server: Replica, workers: int, timeout: float) -> list[bool | None]:
    """Whether each of the server's processes leads, asked over new connections until every
    process has answered one (the kernel gives each connection to one of them)."""
    seen: dict[str, bool] = {}
    deadline = time.monotonic() + timeout
    while len(seen) < workers and time.monotonic() < deadline:
        try:
            scheduler = httpx.get(f"{server.url}/readyz", timeout=5).json()["scheduler"]
        except (httpx.HTTPError, ValueError, KeyError):
            time.sleep(0.05)
            continue
        seen[scheduler["holder"]] = bool(scheduler["leader"])
        if len(seen) < workers:
            time.sleep(0.01)
    return [seen[h] for h in sorted(seen)]


# How long after a breach's detection a second one, by a process racing the first, could
# come: both would have woken at the same deadline.
SETTLE = 0.5


def await_clocks_out(engine: sa.Engine, timeout: float = 60) -> None:
    """Wait until no clock runs: each ticket's one clock (POLICY's arrival) answered or its
    breach recorded, however soon detection came; then a second detection by a process
    racing the first would have come too. A fixed wait had to allow for the slowest
    machine; after `timeout` the caller's checks name what is missing or late."""
    from monitor.sla.models import TargetState
    from monitor.sla.vocab import CLOCK_RUNNING

    running = (
        sa.select(sa.func.count())
        .select_from(TargetState)
        .where(col(TargetState.status).in_(CLOCK_RUNNING))
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            if not conn.execute(running).scalar_one():
                break
        time.sleep(0.05)
    time.sleep(SETTLE)


def lease_holder(engine: sa.Engine) -> str:
    with engine.connect() as conn:
        found = conn.execute(
            sa.text("SELECT holder FROM leases WHERE name = 'scheduler'")
        ).scalar_one_or_none()
    return str(found or "")


def collect(engine: sa.Engine, outcome: Outcome, acked_at: dict[str, float]) -> None:
    with engine.connect() as conn:
        outcome.stored = sorted(
            conn.execute(sa.text("SELECT external_id FROM tickets")).scalars().all()
        )
        rows = conn.execute(
            sa.text(
                "SELECT t.external_id, b.target, b.deadline, b.detected_at "
                "FROM breaches b JOIN tickets t ON t.id = b.ticket_id "
                "WHERE b.cleared_at IS NULL ORDER BY t.external_id, b.target"
            )
        ).all()
        for ref, target, stored_deadline, stored_detected in sorted(rows):
            deadline, detected = _instant(stored_deadline), _instant(stored_detected)
            outcome.breaches.append((ref, target, deadline))
            # Detection latency counts the clocks that ran out after their ticket was
            # acknowledged: before that, the write itself was late, not the scheduler.
            if ref in acked_at and acked_at[ref] < deadline.timestamp():
                outcome.latency[(ref, target)] = (detected - deadline).total_seconds()
                outcome.deadlines[(ref, target)] = deadline.timestamp()
        # A breach may be detected and later cleared (an arrival sent before the deadline but
        # answered after it); what must never happen is one detected twice.
        detected, distinct, rows_all = conn.execute(
            sa.text(
                "SELECT count(*), count(DISTINCT entity_id), "
                "(SELECT count(*) FROM breaches) FROM audit_log "
                "WHERE action = 'breach.detected'"
            )
        ).one()
    outcome.detected_records, outcome.distinct_detected = int(detected), int(distinct)
    outcome.breach_rows = int(rows_all)


def _instant(value: datetime | str) -> datetime:
    """An instant as read by plain SQL: aware on PostgreSQL, UTC text on SQLite."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def replay(engine: sa.Engine, config: Path, work: Path) -> list[tuple[str, str, datetime]]:
    """The same events through one process at one instant, on a fresh SQLite file."""
    from monitor.breaches.models import Breach
    from monitor.tickets.models import Event, Ticket

    with session_scope(engine) as session:
        tickets = session.exec(select(Ticket).order_by(col(Ticket.id))).all()
        events = session.exec(select(Event).order_by(col(Event.ticket_id), col(Event.seq))).all()
        now = datetime.now(UTC)
    by_ticket: dict[int, list[Any]] = {}
    for e in events:
        by_ticket.setdefault(e.ticket_id, []).append(e)
    url = f"sqlite:///{work}/replay.db"
    single = make_engine(url)
    ensure_schema(single)
    settings = Settings(database_url=url, config_dir=config)
    try:
        with session_scope(single) as session:
            flow = write_flow(session, load_context(session, settings, FixedClock(now)))
            with flow as writes:
                for t in tickets:
                    data = {
                        "external_id": t.external_id,
                        "pool": t.pool,
                        "severity": t.severity,
                        "title": t.title,
                        "events": [
                            {"type": e.type, "at": e.occurred_at.isoformat()}
                            for e in by_ticket[t.id or 0]
                        ],
                    }
                    writes.create_ticket(TicketIn.model_validate(data), SYSTEM)
        with session_scope(single) as session:
            rows = session.exec(
                select(Ticket.external_id, Breach.target, Breach.deadline)
                .join(Ticket, col(Ticket.id) == Breach.ticket_id)
                .where(col(Breach.cleared_at).is_(None))
            ).all()
        return sorted((str(ref), target, deadline) for ref, target, deadline in rows)
    finally:
        single.dispose()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def main() -> None:
    from bench.run import Result, bench_replicas

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", required=True, help="a PostgreSQL database to empty")
    parser.add_argument("--port", type=int, default=8640)
    args = parser.parse_args()
    results: list[Result] = []
    for line in bench_replicas(args.database, results, args.port):
        print(line)


if __name__ == "__main__":
    main()
