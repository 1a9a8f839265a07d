"""Search and ticket page time at scale (web pages and the API) with 100 k or 1 M tickets.

Fills a fresh database with synthetic tickets (the bulk filler of bench/metrics_scrape.py,
with varied Chinese titles, a rare title on one ticket in 50,000, and external ids), adds 40
real tickets through the write flow, logs in as a supervisor and times whole requests
in-process (routing, session check, queries, template), then writes p50/p95 with the load
average to bench/RESULTS.md under a heading that carries `--label`.

    .venv/bin/python bench/web_pages.py [--tickets 100000] [--database URL] [--runs 100]
        [--label after]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from metrics_scrape import analyze, fill  # noqa: E402

from bench.results import machine  # noqa: E402
from monitor.api.app import create_app  # noqa: E402
from monitor.auth.service import create_token, create_user  # noqa: E402
from monitor.core.clock import FixedClock  # noqa: E402
from monitor.core.db import ensure_schema, make_engine, session_scope  # noqa: E402
from monitor.core.settings import Settings  # noqa: E402
from monitor.judging.flow import write_flow  # noqa: E402
from monitor.sla.service import load_context  # noqa: E402
from monitor.tickets.schemas import TicketIn  # noqa: E402
from monitor.tickets.service import Actor  # noqa: E402

NOW = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)
TITLES = [
    "政务外网出口中断",
    "云主机批量宕机",
    "数据库主备切换失败",
    "对象存储上传缓慢",
    "负载均衡健康检查异常",
    "云硬盘挂载失败",
    "VPN 连接间歇中断",
    "监控代理离线",
]
RARE = "核心交换机板卡故障"  # one ticket in 50,000: `q=板卡` finds 2 of 100 k, 20 of 1 M
PASSWORD = "bench password 1"


def retitle(row: dict[str, Any]) -> None:
    """Give a bulk ticket a searchable title, description and external id."""
    i = row["id"]
    row["title"] = RARE if i % 50_000 == 7 else TITLES[i % len(TITLES)]
    row["description"] = "用户反映业务系统访问缓慢，运营单位排查中"
    row["external_id"] = f"B-{i}"


def real_tickets(engine: sa.Engine, settings: Settings, n: int) -> list[int]:
    """Tickets with whole timelines, written like any other, to open their pages."""
    clock = FixedClock(NOW)
    actor = Actor("bench-ops", "operator", "operator", "pool2")
    ids = []
    with session_scope(engine) as session:
        ctx = load_context(session, settings, clock)
        with write_flow(session, ctx) as flow:
            for i in range(n):
                day = NOW - timedelta(days=10 + i)
                data = TicketIn.model_validate(
                    {
                        "external_id": f"REAL-{i}",
                        "pool": "pool2",
                        "severity": "major",
                        "title": TITLES[i % len(TITLES)],
                        "source": "monitoring",
                        "events": [
                            {"type": "reported", "at": day.isoformat()},
                            {"type": "arrived", "at": (day + timedelta(minutes=40)).isoformat()},
                            {"type": "resolved", "at": (day + timedelta(hours=3)).isoformat()},
                            {"type": "verified", "at": (day + timedelta(hours=5)).isoformat()},
                            {
                                "type": "report_submitted",
                                "at": (day + timedelta(days=2)).isoformat(),
                            },
                        ],
                    }
                )
                ticket = flow.create_ticket(data, actor)
                assert ticket.id is not None
                ids.append(ticket.id)
        create_user(
            session,
            name="bench-supervisor",
            password=PASSWORD,
            role="supervisor",
            pool=None,
            known_pools=["pool1", "pool2"],
            now=NOW,
        )
    return ids


def api_token(engine: sa.Engine) -> str:
    with session_scope(engine) as session:
        _, plain = create_token(
            session,
            name="bench",
            role="supervisor",
            pool=None,
            known_pools=["pool1", "pool2"],
            now=NOW,
        )
    return plain


def build(engine: sa.Engine, settings: Settings, n: int, emptied: bool) -> tuple[list[int], float]:
    """A fresh database of `n` bulk tickets and 40 real ones; their ids and the fill time."""
    if emptied:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    ensure_schema(engine)
    with session_scope(engine) as session:
        load_context(session, settings, FixedClock(NOW))
    fill_seconds = fill(engine, n, shape=retitle)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:  # the bulk fill gave explicit ids
            for table in ("tickets", "breaches", "findings"):
                conn.execute(
                    sa.text(f"SELECT setval('{table}_id_seq', (SELECT max(id) FROM {table}))")
                )
    ids = real_tickets(engine, settings, 40)
    analyze(engine)
    return ids, fill_seconds


def reuse(engine: sa.Engine, settings: Settings) -> list[int]:
    """The real tickets of a database an earlier run filled (to time a change of code)."""
    with engine.connect() as conn:
        found = conn.execute(sa.text("SELECT id FROM tickets WHERE external_id LIKE 'REAL-%'"))
        return sorted(found.scalars())


def timed(
    client: TestClient, paths: list[str], runs: int, expect: int, headers: dict[str, str]
) -> list[float]:
    out = []
    for i in range(runs):
        path = paths[i % len(paths)]
        began = time.perf_counter()
        answer = client.get(path, follow_redirects=False, headers=headers)
        out.append(time.perf_counter() - began)
        assert answer.status_code == expect, (path, answer.status_code)
    return out


def commit() -> str:
    out = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    return out.stdout.strip() or "unknown"


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[18]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--database", default=None, help="default: a fresh SQLite file")
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--label", default="", help="added to the heading, e.g. before/after")
    parser.add_argument(
        "--reuse", action="store_true", help="time an already filled --database (code changes)"
    )
    args = parser.parse_args()
    load_start = os.getloadavg()

    work = Path(tempfile.mkdtemp())
    url = args.database or f"sqlite:///{work}/bench.db"
    engine = make_engine(url)
    settings = Settings(database_url=url, config_dir=ROOT / "config", evidence_dir=work / "ev")
    if args.reuse:
        ids = reuse(engine, settings)
        fill_seconds = 0.0
    else:
        ids, fill_seconds = build(engine, settings, args.tickets, args.database is not None)
    bearer = {"Authorization": f"Bearer {api_token(engine)}"}

    app = create_app(settings, clock=FixedClock(NOW), engine=engine)
    figures = {}
    with TestClient(app) as client:
        form = client.get("/login").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)  # type: ignore[union-attr]
        client.post(
            "/login",
            data={"username": "bench-supervisor", "password": PASSWORD, "csrf_token": token},
            follow_redirects=False,
        )
        rare = max(1, args.tickets // 50_000)
        cases: dict[str, tuple[list[str], int, dict[str, str]]] = {
            "ticket page (5 events, 3 targets)": ([f"/tickets/{i}" for i in ids], 200, {}),
            "search by words (`q=出口`, ~1/8 of all tickets match)": (
                ["/tickets?q=出口"],
                200,
                {},
            ),
            f"search by a rare word (`q=板卡`, {rare} match)": (["/tickets?q=板卡"], 200, {}),
            "search by Latin words, other case (`q=vpn`, ~1/8 match)": (
                ["/tickets?q=vpn"],
                200,
                {},
            ),
            "search by filters (pool, severity, breached)": (
                ["/tickets?pool=pool2&severity=general&breached=yes"],
                200,
                {},
            ),
            "search by words and filters (`q=出口`, pool, severity, breached)": (
                ["/tickets?q=出口&pool=pool2&severity=major&breached=yes"],
                200,
                {},
            ),
            "search by external id (jumps to the ticket)": (
                [f"/tickets?q=B-{n}" for n in range(1000, 1000 + args.runs)],
                303,
                {},
            ),
            "API `GET /api/v1/tickets?q=出口`": (["/api/v1/tickets?q=出口"], 200, bearer),
            "API `GET /api/v1/tickets?q=板卡`": (["/api/v1/tickets?q=板卡"], 200, bearer),
            "API `GET /api/v1/tickets?pool=pool2&breached=true`": (
                ["/api/v1/tickets?pool=pool2&breached=true"],
                200,
                bearer,
            ),
        }
        for name, (paths, expect, headers) in cases.items():
            timed(client, paths, 5, expect, headers)  # warm the caches first
            figures[name] = timed(client, paths, args.runs, expect, headers)
    load_end = os.getloadavg()

    lines = [
        f"### Search and ticket page at {args.tickets:,} tickets ({engine.dialect.name})"
        + (f" — {args.label}" if args.label else ""),
        "",
        f"- machine: {machine()}; "
        f"measured {time.strftime('%Y-%m-%d %H:%M %Z')} on a machine shared with other engineers' "
        "test runs",
        "- load average (1, 5, 15 min) at the start "
        + ", ".join(f"{x:.2f}" for x in load_start)
        + ", at the end "
        + ", ".join(f"{x:.2f}" for x in load_end),
        f"- `bench/web_pages.py`: whole requests in-process as a logged-in supervisor, "
        f"{args.runs} each after 5 warm-up requests ("
        + (
            "on the database an earlier run filled"
            if args.reuse
            else f"filled in {fill_seconds:.0f} s"
        )
        + f"); commit {commit()}",
    ]
    for name, values in figures.items():
        lines.append(
            f"- {name}: p50 {statistics.median(values) * 1000:.0f} ms, "
            f"p95 {p95(values) * 1000:.0f} ms (target p95 ≤ 100 ms)"
        )
    lines.append("")
    print("\n".join(lines))
    results = ROOT / "bench" / "RESULTS.md"
    old = results.read_text(encoding="utf-8")
    head = lines[0]
    if head in old:
        before, after = old.split(head, 1)
        rest = after.split("\n### ", 1)
        old = before.rstrip() + "\n\n" + ("### " + rest[1] if len(rest) > 1 else "")
    results.write_text(old.rstrip() + "\n\n" + "\n".join(lines), encoding="utf-8")
    engine.dispose()


if __name__ == "__main__":
    main()
