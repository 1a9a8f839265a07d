"""Detection latency: from a clock's deadline to its breach being visible to a reader.

Starts the real scheduler (lease, wake-at-next-deadline, safety sweep) on a fresh database,
creates tickets whose 1-minute clocks run out over the next seconds, and a separate reader
polls for breach rows as an API request would. Prints p50/p99/max and writes them to
bench/RESULTS.md.

    .venv/bin/python bench/detection_latency.py [--tickets 40] [--database URL]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import Session, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.breaches.models import Breach  # noqa: E402
from monitor.core.clock import SystemClock  # noqa: E402
from monitor.core.db import ensure_schema, make_engine, session_scope  # noqa: E402
from monitor.core.settings import Settings  # noqa: E402
from monitor.judging.flow import write_flow  # noqa: E402
from monitor.scheduler.runner import Runner  # noqa: E402
from monitor.sla.service import load_context  # noqa: E402
from monitor.tickets.schemas import TicketIn  # noqa: E402
from monitor.tickets.service import SYSTEM  # noqa: E402

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


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tickets", type=int, default=40)
    parser.add_argument("--database", default=None, help="default: a fresh SQLite file")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp())
    config = work / "config"
    shutil.copytree(ROOT / "config", config)
    (config / "sla.yaml").write_text(POLICY, encoding="utf-8")
    url = args.database or f"sqlite:///{work}/bench.db"
    engine = make_engine(url)
    if args.database:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    ensure_schema(engine)
    settings = Settings(database_url=url, config_dir=config)
    clock = SystemClock()
    runner = Runner(engine, settings, clock, holder="bench")
    runner.start()
    while not runner.is_leader:
        time.sleep(0.05)

    deadlines: dict[int, float] = {}
    start = clock.now()
    with (
        session_scope(engine) as session,
        write_flow(session, load_context(session, settings, clock)) as flow,
    ):
        for i in range(args.tickets):
            # Deadlines spread from 3 s to ~23 s from now, 0.5 s apart.
            reported = start - timedelta(seconds=60) + timedelta(seconds=3 + i * 0.5)
            ticket = flow.create_ticket(
                TicketIn.model_validate(
                    {
                        "pool": "pool1",
                        "severity": "major",
                        "title": f"bench {i}",
                        "events": [{"type": "reported", "at": reported.isoformat()}],
                    }
                ),
                SYSTEM,
            )
            assert ticket.id is not None
            deadlines[ticket.id] = (reported + timedelta(seconds=60)).timestamp()

    seen: dict[int, float] = {}
    detected: dict[int, float] = {}
    stop = time.time() + 3 + args.tickets * 0.5 + 10

    def reader() -> None:
        while time.time() < stop and len(seen) < len(deadlines):
            with Session(engine.execution_options(readonly=True)) as s:
                rows = s.exec(select(Breach.ticket_id, Breach.detected_at)).all()
                now = time.time()
                for ticket_id, detected_at in rows:
                    if ticket_id not in seen:
                        seen[ticket_id] = now
                        detected[ticket_id] = detected_at.timestamp()
                s.rollback()
            time.sleep(0.01)

    thread = threading.Thread(target=reader)
    thread.start()
    thread.join()
    runner.stop()

    visible = [seen[t] - deadlines[t] for t in seen]
    recorded = [detected[t] - deadlines[t] for t in detected]
    missed = len(deadlines) - len(seen)
    backend = engine.dialect.name
    lines = [
        f"### Detection latency ({backend}, {args.tickets} clocks)",
        "",
        f"- machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"{platform.python_implementation()} {platform.python_version()}, {platform.system()}",
        f"- measured: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
        f"- deadline → breach recorded: p50 {statistics.median(recorded) * 1000:.0f} ms, "
        f"p99 {percentile(recorded, 0.99) * 1000:.0f} ms, max {max(recorded) * 1000:.0f} ms",
        f"- deadline → visible to a reader (10 ms polling): p50 "
        f"{statistics.median(visible) * 1000:.0f} ms, p99 {percentile(visible, 0.99) * 1000:.0f} "
        f"ms, max {max(visible) * 1000:.0f} ms",
        f"- not seen within the run: {missed}",
        "",
    ]
    print("\n".join(lines))
    results = ROOT / "bench" / "RESULTS.md"
    old = results.read_text(encoding="utf-8") if results.exists() else "# Benchmark results\n\n"
    head = lines[0]
    kept = old.split(head)[0].rstrip() + "\n\n" if head in old else old.rstrip() + "\n\n"
    after = old.split(head, 1)[1].split("\n### ", 1) if head in old else []
    tail = ("### " + after[1]) if len(after) > 1 else ""
    results.write_text(kept + "\n".join(lines) + "\n" + tail, encoding="utf-8")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
