"""Shared by the bench scripts: a fresh database, clocks about to run out, the machine's
details, percentiles and replacing one section of bench/RESULTS.md."""

from __future__ import annotations

import os
import platform
import shutil
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from monitor.core.db import ensure_schema, make_engine, session_scope
from monitor.judging.flow import write_flow
from monitor.scheduler.runner import Runner
from monitor.sla.service import load_context
from monitor.tickets.schemas import TicketIn
from monitor.tickets.service import SYSTEM

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "RESULTS.md"
# One 1-minute clock per ticket that warns just before its deadline.
POLICY = """policies:
  - version: bench
    effective_from: 2019-01-01
    severities:
      major:
        name: bench
        targets:
          - {id: arrival, name: 到场, start: reported, stop: arrived, duration: 1m,
             calendar: 24x7, warn_at: 0.99, pausable: false}
"""


def fresh_database(database: str | None) -> tuple[Path, Path, str, Engine]:
    """A work folder, its config (with POLICY) and an empty database: a new SQLite file, or
    the given PostgreSQL database emptied."""
    work = Path(tempfile.mkdtemp())
    config = work / "config"
    shutil.copytree(ROOT / "config", config)
    (config / "sla.yaml").write_text(POLICY, encoding="utf-8")
    url = database or f"sqlite:///{work}/bench.db"
    engine = make_engine(url)
    if database:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    ensure_schema(engine)
    return work, config, url, engine


class CpuUse:
    """CPU seconds spent from its start by the process trees under `roots` (the servers),
    by this process (the benchmark's clients) and by the local PostgreSQL server's
    processes, and how busy the whole machine was; read from /proc (Linux), so that a
    throughput figure says where the machine's time went. On 2 shared cores the clients and
    the database take their part of the cores the server would use."""

    def __init__(self, roots: list[int]) -> None:
        self.roots = roots
        self.available = Path("/proc/stat").exists()
        self.start = self._read() if self.available else None

    @staticmethod
    def _processes() -> dict[int, tuple[str, int, float]]:
        """Every process: its name, parent and CPU seconds."""
        tick = os.sysconf("SC_CLK_TCK")
        out = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                text = (entry / "stat").read_text()
            except OSError:  # ended meanwhile
                continue
            name = text[text.index("(") + 1 : text.rindex(")")]
            fields = text[text.rindex(")") + 2 :].split()
            out[int(entry.name)] = (
                name,
                int(fields[1]),
                (int(fields[11]) + int(fields[12])) / tick,
            )
        return out

    def _read(self) -> tuple[dict[int, tuple[str, int, float]], float, float, float]:
        cpu = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        tick = os.sysconf("SC_CLK_TCK")
        me = os.times()
        return self._processes(), sum(cpu) / tick, (cpu[3] + cpu[4]) / tick, me.user + me.system

    def spent(self) -> dict[str, float] | None:
        """CPU seconds since the start: `server`, `client`, `database`; `busy`: the
        machine's busy share (0-1). None where /proc is not."""
        if self.start is None:
            return None
        before, total0, idle0, me0 = self.start
        after, total1, idle1, me1 = self._read()
        tree = set(self.roots)
        grew = True
        while grew:
            grew = False
            for pid, (_, parent, _) in after.items():
                if parent in tree and pid not in tree:
                    tree.add(pid)
                    grew = True

        def used(pids: set[int]) -> float:
            return sum(after[p][2] - before.get(p, ("", 0, 0.0))[2] for p in pids)

        database = {p for p, (name, _, _) in after.items() if name == "postgres"}
        elapsed = total1 - total0
        return {
            "server": used(tree),
            "client": me1 - me0,
            "database": used(database),
            "busy": 1 - (idle1 - idle0) / elapsed if elapsed else 0.0,
        }


def machine() -> str:
    """The machine's details, as every section of RESULTS.md gives them, with its speed of
    the moment (`speed`)."""
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_implementation()} "
        f"{platform.python_version()}, {platform.system()} {platform.release()}; {speed()}"
    )


def speed() -> str:
    """How fast this machine runs Python just now: a shared machine's speed has moved by
    two times between hours, more than most changes a benchmark compares, so each section
    says which speed its figures were measured at."""
    return f"a loop of 10 million additions took {additions_seconds():.2f} s of CPU"


def additions_seconds() -> float:
    """The CPU seconds a loop of 10 million additions takes just now (`speed`)."""
    began = time.process_time()
    total = 0
    for i in range(10_000_000):
        total += i
    return time.process_time() - began


def clocks_running_out(runner: Runner, n: int, first: float) -> dict[str, float]:
    """`n` major tickets (B-000, B-001, …) whose 1-minute clocks run out `first` seconds from
    now and then every 0.5 s, written through the write flow once `runner` leads; each
    external id with its deadline (epoch seconds)."""
    while not runner.is_leader:
        time.sleep(0.05)
    deadlines: dict[str, float] = {}
    start = runner.clock.now()
    with (
        session_scope(runner.engine) as session,
        write_flow(session, load_context(session, runner.settings, runner.clock)) as flow,
    ):
        for i in range(n):
            reported = start - timedelta(seconds=60) + timedelta(seconds=first + i * 0.5)
            ref = f"B-{i:03d}"
            flow.create_ticket(
                TicketIn.model_validate(
                    {
                        "external_id": ref,
                        "pool": "pool1",
                        "severity": "major",
                        "title": f"bench {i}",
                        "events": [{"type": "reported", "at": reported.isoformat()}],
                    }
                ),
                SYSTEM,
            )
            deadlines[ref] = (reported + timedelta(seconds=60)).timestamp()
    return deadlines


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def write_section(lines: list[str]) -> None:
    """Replace the section headed by lines[0] (or append it), keeping the others."""
    old = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n\n"
    # The whole heading line: a heading that begins another (`— after`, `— after: c85909a`)
    # must not replace it.
    head = f"\n{lines[0]}\n"
    found = head in old
    kept = old.split(head)[0].rstrip() + "\n\n" if found else old.rstrip() + "\n\n"
    after = old.split(head, 1)[1].split("\n### ", 1) if found else []
    tail = ("\n### " + after[1]) if len(after) > 1 else ""
    RESULTS.write_text(kept + "\n".join(lines) + "\n" + tail, encoding="utf-8")
