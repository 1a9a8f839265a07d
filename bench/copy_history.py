"""Copy a generated history from a SQLite file into an empty PostgreSQL database with COPY.

`bench/history.py` is bound by generating and judging tickets in Python (about an hour for
1 M tickets on PostgreSQL); the rows it writes are the same on both databases (the test of
the generator checks each database against a real import). So the PostgreSQL copy of a large
history is taken from the SQLite file, table for table and row for row, then checked: the same
row count in every table and the same audit chain head.

    .venv/bin/python -m bench.copy_history --sqlite FILE --database postgresql+psycopg://…
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import SQLModel

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import monitor.models  # noqa: E402,F401  (every table in the metadata)
from bench.history import _after_bulk  # noqa: E402
from bench.run import empty  # noqa: E402
from monitor.core.db import make_engine  # noqa: E402

# Written by the schema's creation, not by the history.
SKIP = {"alembic_version"}


def copy_history(source: Path, url: str) -> dict[str, int]:
    """Empty the PostgreSQL database, create the schema, COPY every table; row counts."""
    empty(url)
    engine = make_engine(url)
    lite = sqlite3.connect(source)
    counts = {}
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("SET TIME ZONE 'UTC'")  # SQLite holds UTC wall times
        for table in SQLModel.metadata.sorted_tables:
            if table.name in SKIP:
                continue
            cursor.execute(f"DELETE FROM {table.name}")  # rows the schema's creation wrote
            names = [c.name for c in table.columns]
            columns = ", ".join(f'"{n}"' for n in names)
            rows = lite.execute(f"SELECT {columns} FROM {table.name}")
            n = 0
            with cursor.copy(f"COPY {table.name} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
                    n += 1
            counts[table.name] = n
        raw.commit()
    finally:
        raw.close()
    _after_bulk(engine)
    check(lite, engine, counts)
    return counts


def check(lite: sqlite3.Connection, engine: sa.Engine, counts: dict[str, int]) -> None:
    """Every table holds as many rows as the file, and the audit chains end in the same hash."""
    head = "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1"
    with engine.connect() as conn:
        for name, n in counts.items():
            found = conn.execute(sa.text(f"SELECT count(*) FROM {name}")).scalar_one()
            if found != n:
                raise SystemExit(f"{name}: {found} rows copied, {n} in the file")
        if tuple(conn.execute(sa.text(head)).one()) != lite.execute(head).fetchone():
            raise SystemExit("the audit chain heads differ")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sqlite", type=Path, required=True, help="a generated history")
    parser.add_argument("--database", required=True, help="PostgreSQL URL; emptied first")
    args = parser.parse_args()
    began = time.perf_counter()
    counts = copy_history(args.sqlite, args.database)
    print(json.dumps({**counts, "seconds": round(time.perf_counter() - began, 1)}))


if __name__ == "__main__":
    main()
