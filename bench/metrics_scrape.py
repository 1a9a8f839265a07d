"""/metrics at scale: the time to produce one scrape with 1 M tickets in the database.

Fills a fresh database with synthetic tickets, target states, breaches and findings (bulk
inserts straight into the tables: this measures the read side), then times the collector's
full exposition several times. Prints the figures and writes them to bench/RESULTS.md.

    .venv/bin/python bench/metrics_scrape.py [--tickets 1000000] [--database URL]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from prometheus_client import generate_latest  # noqa: E402

from bench.results import machine  # noqa: E402
from monitor.breaches.models import Breach, Finding  # noqa: E402
from monitor.core.clock import SystemClock  # noqa: E402
from monitor.core.db import ensure_schema, make_engine, session_scope  # noqa: E402
from monitor.core.settings import Settings  # noqa: E402
from monitor.metrics.collector import make_registry  # noqa: E402
from monitor.metrics.totals import reconcile  # noqa: E402
from monitor.sla.models import TargetState  # noqa: E402
from monitor.sla.service import load_context  # noqa: E402
from monitor.tickets.models import Ticket  # noqa: E402

TARGETS = {
    "major": ["arrival", "resolution", "report"],
    "significant": ["response", "resolution"],
    "general": ["response", "resolution"],
    "anomaly": ["user_notice"],
}
WEIGHTS = {"major": 1, "significant": 8, "general": 45, "anomaly": 46}
KINDS = ["late_entry", "no_evidence", "overdue_open", "late_verification", "impossible_order"]
START = datetime(2020, 1, 1, tzinfo=UTC)


def fill(
    engine: sa.Engine,
    n: int,
    batch: int = 20000,
    shape: Callable[[dict[str, Any]], None] | None = None,
) -> float:
    """Bulk-insert `n` tickets with states, breaches and findings; `shape` may change each
    ticket row before it is written (a ticket's facts cannot be updated afterwards)."""
    rng = random.Random(1)
    severities = list(WEIGHTS)
    weights = list(WEIGHTS.values())
    began = time.perf_counter()
    tickets, states, breaches, findings = [], [], [], []
    breach_id = 0

    def flush(final: bool = False) -> None:
        if len(tickets) < batch and not final:
            return
        with engine.begin() as conn:
            for table, rows in (
                (Ticket, tickets),
                (TargetState, states),
                (Breach, breaches),
                (Finding, findings),
            ):
                if rows:
                    conn.execute(sa.insert(table.__table__), rows)  # type: ignore[attr-defined]
                    rows.clear()

    for i in range(1, n + 1):
        severity = rng.choices(severities, weights)[0]
        pool = "pool1" if rng.random() < 0.5 else "pool2"
        reported = START + timedelta(seconds=rng.randrange(7 * 365 * 86400))
        roll = rng.random()
        status = "closed" if roll < 0.9 else "resolved" if roll < 0.95 else "open"
        tickets.append(
            {
                "id": i,
                "pool": pool,
                "external_id": None,
                "severity": severity,
                "current_severity": severity,
                "title": "bench",
                "description": "",
                "source": "monitoring",
                "units": [],
                "systems": [],
                "policy_version": "contract-2019",
                "status": status,
                "reported_at": reported,
                "created_at": reported,
                "updated_at": reported,
                "created_by": "bench",
            }
        )
        if shape is not None:
            shape(tickets[-1])
        for target in TARGETS[severity]:
            late = rng.random() < 0.08
            target_status = "running" if status == "open" else "breached" if late else "met"
            elapsed = rng.uniform(60, 3 * 86400)
            states.append(
                {
                    "ticket_id": i,
                    "target": target,
                    "name": target,
                    "pool": pool,
                    "severity": severity,
                    "policy_version": "contract-2019",
                    "status": target_status,
                    "start": reported,
                    "deadline": reported + timedelta(hours=2),
                    "stop": None if status == "open" else reported + timedelta(seconds=elapsed),
                    "risk_at": None,
                    "elapsed_seconds": elapsed,
                    "overrun_seconds": None,
                    "paused_seconds": 0.0,
                    "calendar": "24x7",
                    "duration": "2h",
                    "unknown_year": None,
                    "explain": "",
                    "judged_at": reported,
                }
            )
            if target_status == "breached":
                breach_id += 1
                breaches.append(
                    {
                        "id": breach_id,
                        "ticket_id": i,
                        "target": target,
                        "pool": pool,
                        "severity": severity,
                        "deadline": reported + timedelta(hours=2),
                        "detected_at": reported + timedelta(hours=2),
                        "cleared_at": None,
                        "review": rng.choice(["pending", "confirmed", "confirmed", "waived"]),
                        "reviewed_at": None,
                    }
                )
        if rng.random() < 0.05:
            kind = rng.choice(KINDS)
            findings.append(
                {
                    "kind": kind,
                    "key": f"{kind}:{i}",
                    "ticket_id": i,
                    "pool": pool,
                    "detail": "bench",
                    "opened_at": reported,
                    "closed_at": None if rng.random() < 0.3 else reported,
                }
            )
        flush()
    flush(final=True)
    return time.perf_counter() - began


def analyze(engine: sa.Engine) -> None:
    """Fresh planner statistics after a bulk fill, as a database in service would have."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE"))
    else:
        with engine.begin() as conn:
            conn.execute(sa.text("ANALYZE"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--database", default=None, help="default: a fresh SQLite file")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp())
    url = args.database or f"sqlite:///{work}/bench.db"
    engine = make_engine(url)
    if args.database:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    ensure_schema(engine)
    settings = Settings(database_url=url, config_dir=ROOT / "config")
    with session_scope(engine) as session:
        load_context(session, settings, SystemClock())  # stores the policy version
    fill_seconds = fill(engine, args.tickets)
    analyze(engine)
    began = time.perf_counter()
    with session_scope(engine) as session:
        reconcile(session)  # the bulk fill bypassed the running totals
    reconcile_seconds = time.perf_counter() - began
    with engine.connect() as conn:
        counts: dict[str, Any] = {
            t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar()
            for t in ("tickets", "target_states", "breaches", "findings")
        }

    registry = make_registry(engine, settings)
    timings, size = [], 0
    for _ in range(args.runs):
        began = time.perf_counter()
        size = len(generate_latest(registry))
        timings.append(time.perf_counter() - began)
    lines = [
        f"### /metrics scrape at {args.tickets:,} tickets ({engine.dialect.name})",
        "",
        f"- machine: {machine()}",
        f"- measured: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
        f"- rows: {', '.join(f'{k} {v:,}' for k, v in counts.items())} "
        f"(filled in {fill_seconds:.0f} s; the daily reconcile of the running totals took "
        f"{reconcile_seconds:.1f} s)",
        f"- one full scrape ({size:,} bytes), {args.runs} runs: min {min(timings) * 1000:.0f} ms, "
        f"median {statistics.median(timings) * 1000:.0f} ms, max {max(timings) * 1000:.0f} ms "
        "(target ≤ 250 ms)",
        "",
    ]
    print("\n".join(lines))
    results = ROOT / "bench" / "RESULTS.md"
    old = results.read_text(encoding="utf-8") if results.exists() else "# Benchmark results\n\n"
    head = lines[0]
    if head in old:
        before, after = old.split(head, 1)
        rest = after.split("\n### ", 1)
        old = before.rstrip() + "\n\n" + ("### " + rest[1] if len(rest) > 1 else "")
    results.write_text(old.rstrip() + "\n\n" + "\n".join(lines), encoding="utf-8")
    engine.dispose()


if __name__ == "__main__":
    main()
