"""Shared by the bench scripts: percentiles and replacing one section of bench/RESULTS.md."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from monitor.core.db import ensure_schema, make_engine

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


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def write_section(lines: list[str]) -> None:
    """Replace the section headed by lines[0] (or append it), keeping the others."""
    old = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n\n"
    head = lines[0]
    kept = old.split(head)[0].rstrip() + "\n\n" if head in old else old.rstrip() + "\n\n"
    after = old.split(head, 1)[1].split("\n### ", 1) if head in old else []
    tail = ("### " + after[1]) if len(after) > 1 else ""
    RESULTS.write_text(kept + "\n".join(lines) + "\n" + tail, encoding="utf-8")
