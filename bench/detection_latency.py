"""Detection latency: from a clock's deadline to its breach being visible to a reader.

Starts the real scheduler (lease, wake-at-next-deadline, safety sweep) on a fresh database,
creates tickets whose 1-minute clocks run out over the next seconds, and a separate reader
polls for breach rows as an API request would. Prints p50/p99/max and writes them to
bench/RESULTS.md.

    .venv/bin/python bench/detection_latency.py [--tickets 40] [--database URL]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path

from sqlmodel import Session, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.results import (  # noqa: E402
    clocks_running_out,
    fresh_database,
    machine,
    percentile,
    write_section,
)
from monitor.breaches.models import Breach  # noqa: E402
from monitor.core.clock import SystemClock  # noqa: E402
from monitor.core.settings import Settings  # noqa: E402
from monitor.scheduler.runner import Runner  # noqa: E402
from monitor.tickets.models import Ticket  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tickets", type=int, default=40)
    parser.add_argument("--database", default=None, help="default: a fresh SQLite file")
    args = parser.parse_args()
    work, config, url, engine = fresh_database(args.database)
    settings = Settings(database_url=url, config_dir=config)
    clock = SystemClock()
    runner = Runner(engine, settings, clock, holder="bench")
    runner.start()
    # Deadlines spread from 3 s to ~23 s from now, 0.5 s apart.
    deadlines = clocks_running_out(runner, args.tickets, 3)

    seen: dict[str, float] = {}
    detected: dict[str, float] = {}
    stop = time.time() + 3 + args.tickets * 0.5 + 10

    def reader() -> None:
        while time.time() < stop and len(seen) < len(deadlines):
            with Session(engine.execution_options(readonly=True)) as s:
                rows = s.exec(
                    select(Ticket.external_id, Breach.detected_at).where(
                        Breach.ticket_id == Ticket.id
                    )
                ).all()
                now = time.time()
                for ref, detected_at in rows:
                    if ref is not None and ref not in seen:
                        seen[ref] = now
                        detected[ref] = detected_at.timestamp()
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
        f"- machine: {machine()}",
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
    write_section(lines)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
