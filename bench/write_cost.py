"""What one write costs: SQL statements and wall time to create a major ticket of four events
and to append one event to it, through the HTTP API on SQLite (a fresh file per run).

    .venv/bin/python bench/write_cost.py [--requests 200] [--code DIR] [--batch N]

`--batch N` sends `POST /tickets/batch` of N generated tickets instead (`bench/history.py`,
the benchmarks' realistic history, each moved to the operator's pool), `--requests` of them;
their bodies are made before the first is sent, for `--made` requests (at least
`--requests`), so that two runs making as many count the same work besides their writes.

Prints one JSON line per figure. Statements are counted as SQLite runs them (the driver's
trace: every statement, whether SQLAlchemy or the driver sent it; a trigger's own statements
not counted). Statement counts do not depend on the machine's load, so a before/after
comparison of the write path holds even on a shared machine; `bench/instructions.py
--writes` runs this under valgrind for the CPU instructions a write costs. `--code DIR`
measures another checkout of the project with this script.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parent.parent
_code = sys.argv[sys.argv.index("--code") + 1] if "--code" in sys.argv else str(ROOT)
sys.path.insert(0, _code)

from monitor.api.app import create_app  # noqa: E402
from monitor.auth.service import create_token  # noqa: E402
from monitor.core.clock import FixedClock  # noqa: E402
from monitor.core.db import make_engine, session_scope, upgrade  # noqa: E402
from monitor.core.settings import Settings  # noqa: E402

NOW = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)
N = 200


def ticket(i: int) -> dict[str, object]:
    return {
        "external_id": f"B-{i}",
        "pool": "pool2",
        "severity": "major",
        "title": "重要业务系统异常",
        "source": "monitoring",
        "events": [
            {"type": "reported", "at": "2026-11-20T09:00:00+08:00"},
            {"type": "arrived", "at": "2026-11-20T09:20:00+08:00"},
            {"type": "resolved", "at": "2026-11-20T10:30:00+08:00"},
            {"type": "report_submitted", "at": "2026-11-23T10:00:00+08:00"},
        ],
    }


def drafts(count: int, first: int) -> list[dict[str, object]]:
    """`count` tickets of the generated history from number `first`, in the operator's pool."""
    from bench import history

    made = [history.draft(history.SEED, n, NOW) for n in range(first, first + count)]
    for d in made:
        d["pool"], d["external_id"] = "pool2", f"B-{d['external_id']}"
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=N, help="of each kind")
    parser.add_argument("--code", default=str(ROOT), help="the checkout to measure")
    parser.add_argument("--batch", type=int, default=0, help="tickets a POST /tickets/batch")
    parser.add_argument("--made", type=int, default=0, help="with --batch: bodies made")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    url = f"sqlite:///{folder / 'bench.db'}"
    upgrade(url)
    engine = make_engine(url)
    statements = [0]

    def count(sql: str) -> None:
        if not sql.startswith("--"):  # "-- TRIGGER …": a trigger's own statements
            statements[0] += 1

    sa.event.listen(engine, "connect", lambda dbapi, _: dbapi.set_trace_callback(count))
    config = Path(args.code) / "config"
    settings = Settings(database_url=url, config_dir=config, evidence_dir=folder / "ev")
    app = create_app(settings, clock=FixedClock(NOW), engine=engine)
    with TestClient(app) as client:
        with session_scope(engine) as session:
            _, value = create_token(
                session,
                name="b",
                role="operator",
                pool="pool2",
                known_pools=["pool1", "pool2"],
                now=NOW,
            )
        headers = {"Authorization": f"Bearer {value}"}
        figures = {}
        made = max(args.requests, args.made) if args.batch else 0
        bodies = [
            json.dumps({"tickets": drafts(args.batch, 1 + i * args.batch)}).encode()
            for i in range(made)
        ]
        sent = {**headers, "Content-Type": "application/json"}
        kinds = (
            (
                f"create_batch_of_{args.batch}",
                lambda i: client.post("/api/v1/tickets/batch", content=bodies[i], headers=sent),
            ),
        )
        for name, send in (
            kinds
            if args.batch
            else (
                (
                    "create_ticket_4_events",
                    lambda i: client.post("/api/v1/tickets", json=ticket(i), headers=headers),
                ),
                (
                    "append_one_event",
                    lambda i: client.post(
                        f"/api/v1/tickets/{i + 1}/events",
                        json={"type": "comment", "at": "2026-11-25T09:00:00+08:00", "note": "x"},
                        headers=headers,
                    ),
                ),
            )
        ):
            times, counts = [], []
            for i in range(args.requests):
                statements[0] = 0
                start = time.perf_counter()
                r = send(i)
                times.append(time.perf_counter() - start)
                counts.append(statements[0])
                assert r.status_code == 201, r.text
            figures[name] = (statistics.median(counts), statistics.median(times) * 1000)
    machine = f"{platform.machine()}, {platform.python_version()}"
    for name, (count, ms) in figures.items():
        for unit, value in (("statements", count), ("ms", round(ms, 2))):
            print(
                json.dumps(
                    {
                        "name": f"{name}_{unit}",
                        "value": value,
                        "unit": unit,
                        "n": args.requests,
                        "database": "sqlite",
                        "machine": machine,
                    }
                )
            )


if __name__ == "__main__":
    main()
