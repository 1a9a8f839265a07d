"""Notice latency: from a clock's deadline to its breach notice acknowledged by a receiver.

Starts the real scheduler and notice sender (lease, wake at the deadline, outbox, Apprise) on
a fresh database with a local HTTP receiver behind Apprise's json://, creates tickets whose
1-minute clocks run out over the next seconds, and times each `【超时】` notice's arrival.
Prints p50/p99/max and writes them to bench/RESULTS.md.

    .venv/bin/python bench/notify_latency.py [--tickets 40] [--database URL]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.results import (  # noqa: E402
    clocks_running_out,
    fresh_database,
    machine,
    percentile,
    write_section,
)
from monitor.core.clock import SystemClock  # noqa: E402
from monitor.core.db import session_scope  # noqa: E402
from monitor.core.settings import Settings  # noqa: E402
from monitor.scheduler.runner import Runner  # noqa: E402
from monitor.sla.service import load_context  # noqa: E402
from tests.notifications.receivers import http_receiver  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tickets", type=int, default=40)
    parser.add_argument("--database", default=None, help="default: a fresh SQLite file")
    args = parser.parse_args()
    work, config, url, engine = fresh_database(args.database)
    arrived: dict[str, float] = {}
    with http_receiver() as receiver:
        settings = Settings(database_url=url, config_dir=config, notify_urls=receiver.url)
        clock = SystemClock()
        with session_scope(engine) as session:
            load_context(session, settings, clock)  # store the policy before the runner does
        runner = Runner(engine, settings, clock, holder="bench")
        runner.start()
        # Deadlines spread from 5 s to ~25 s from now, 0.5 s apart.
        deadlines = clocks_running_out(runner, args.tickets, 5)
        stop = time.time() + 5 + args.tickets * 0.5 + 10
        while time.time() < stop and len(arrived) < len(deadlines):
            with receiver.arrived:
                receiver.arrived.wait(0.5)
                for message, at in zip(receiver.received, receiver.times, strict=True):
                    if message["title"].startswith("【超时】"):
                        arrived.setdefault(message["title"].split()[-2], at)
        runner.stop()

    latency = [arrived[r] - deadlines[r] for r in arrived]
    missed = len(deadlines) - len(arrived)
    lines = [
        f"### Notice latency ({engine.dialect.name}, {args.tickets} clocks)",
        "",
        f"- machine: {machine()}",
        f"- measured: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, load average "
        f"{os.getloadavg()[0]:.1f} (other work on the machine slows every figure)",
        f"- deadline → breach notice acknowledged by a local json:// receiver (Apprise): p50 "
        f"{statistics.median(latency) * 1000:.0f} ms, p99 {percentile(latency, 0.99) * 1000:.0f}"
        f" ms, max {max(latency) * 1000:.0f} ms (target ≤ 2 s)",
        f"- not received within the run: {missed}",
        "",
    ]
    print("\n".join(lines))
    write_section(lines)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
