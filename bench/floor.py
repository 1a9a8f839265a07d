"""The floor under `POST /tickets`: the same server stack with none of the product's work.

An application of one route, served the way `sla-monitor serve` serves (uvicorn, httptools,
uvloop, FastAPI), that takes the very body `POST /tickets` takes (validated by the product's
own `TicketIn`), writes its events as plain rows in one durable transaction of the same
database (the engine `monitor.core.db.make_engine` makes, SQLite writers queued as the
product queues them), and answers the body as JSON. No token, no judgement, no audit chain,
no search index, no running totals.

What it answers per second beside what the product answers shows how much of the HTTP target
this machine leaves to the product: no implementation on this stack can be faster than it.

    SLAMON_BENCH_FLOOR_URL=sqlite:///f.db python -m uvicorn --factory bench.floor:from_environment
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from fastapi import FastAPI, Response

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from monitor.core.db import make_engine, write_queue  # noqa: E402
from monitor.tickets.schemas import TicketIn  # noqa: E402

TABLE = "bench_floor"


def create_floor_app(url: str) -> FastAPI:
    engine = make_engine(url)
    postgres = engine.dialect.name == "postgresql"
    row = "(" + ", ".join(["%s" if postgres else "?"] * 5) + ")"
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {TABLE}")
        conn.exec_driver_sql(
            f"CREATE TABLE {TABLE} (ticket VARCHAR(64), seq INTEGER, type VARCHAR(32), "
            "at VARCHAR(40), note TEXT)"
        )
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.post("/api/v1/tickets", status_code=201)
    def post_ticket(body: TicketIn) -> Response:
        values = [
            value
            for seq, e in enumerate(body.events, 1)
            for value in (body.external_id, seq, e.type, e.at.isoformat(), e.note)
        ]
        # One statement of as many VALUES as events (as the product inserts a ticket's events).
        insert = f"INSERT INTO {TABLE} VALUES " + ", ".join([row] * len(body.events))
        with write_queue(engine), engine.begin() as conn:
            conn.exec_driver_sql(insert, tuple(values))
        return Response(body.model_dump_json().encode(), 201, media_type="application/json")

    @app.get("/healthz")
    def healthz() -> dict[str, bool]:
        return {"ok": True}

    return app


def from_environment() -> FastAPI:
    return create_floor_app(os.environ["SLAMON_BENCH_FLOOR_URL"])
