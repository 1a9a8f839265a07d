"""Where a write's time goes: cProfile of what POST /tickets writes (one ticket per
transaction through the write flow) and of an import, on a generated history. Prints the top
functions by own time and by cumulative time, for whoever optimises the write path next.

    .venv/bin/python -m bench.profile_write [--tickets 5000] [--database URL]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import history  # noqa: E402
from bench.run import CONFIG, empty  # noqa: E402
from monitor.core.clock import FixedClock, SystemClock  # noqa: E402
from monitor.core.db import make_engine, session_scope  # noqa: E402
from monitor.core.settings import Settings  # noqa: E402
from monitor.judging.flow import write_flow  # noqa: E402
from monitor.sla.service import ContextCache, load_context  # noqa: E402
from monitor.tickets.importer import import_rows, read_rows  # noqa: E402
from monitor.tickets.schemas import TicketIn  # noqa: E402
from monitor.tickets.service import SYSTEM  # noqa: E402


def top(profile: cProfile.Profile, count: int = 12) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out).strip_dirs()
    stats.sort_stats("tottime").print_stats(count)
    stats.sort_stats("cumulative").print_stats(count)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=5000)
    parser.add_argument("--posts", type=int, default=30)
    parser.add_argument("--database", default=None, help="default: a fresh SQLite file")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="slamon-profile-"))
    url = args.database or f"sqlite:///{work}/profile.db"
    empty(url)
    engine = make_engine(url)
    settings = Settings(database_url=url, config_dir=CONFIG, evidence_dir=work / "evidence")
    history.write_history(engine, settings, args.tickets)
    contexts = ContextCache(settings, SystemClock())
    now = datetime.now(UTC)
    bodies = [history.draft(history.SEED, 70_000_000 + i, now) for i in range(args.posts)]
    for i, body in enumerate(bodies):
        body["external_id"] = f"PROF-{i}"
    # What POST /tickets does once its request is parsed and authorised: one transaction,
    # one WriteFlow, one ticket, commit (cProfile sees only its own thread, so this runs here
    # rather than behind the test client's server thread).
    profile = cProfile.Profile()
    for body in bodies:
        data = TicketIn.model_validate(body)
        profile.enable()
        with session_scope(engine) as session:
            ctx = contexts.get(session)
            with write_flow(session, ctx) as writes:
                writes.create_ticket(data, SYSTEM)
        profile.disable()
    print(
        f"## one POST /tickets' write, x {args.posts} ({engine.dialect.name}, "
        f"{args.tickets:,} tickets)"
    )
    print(top(profile))

    source = work / "import.json"
    tickets = [history.draft(history.SEED, 80_000_000 + n, history.NOW) for n in range(100)]
    for t in tickets:
        t["external_id"] = "PROF-IMP-" + t["external_id"]
    source.write_text(json.dumps({"tickets": tickets}, ensure_ascii=False), encoding="utf-8")
    profile = cProfile.Profile()
    with session_scope(engine) as session:
        flow = write_flow(session, load_context(session, settings, FixedClock(history.NOW)))
        rows = read_rows(source)
        profile.enable()
        with flow as writes:
            import_rows(writes, rows, history.IMPORTER)
        profile.disable()
    print(f"## import of 100 tickets ({engine.dialect.name})")
    print(top(profile))


if __name__ == "__main__":
    main()
