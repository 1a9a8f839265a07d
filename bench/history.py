"""A province's fault history, generated deterministically and written fast.

`draft(seed, n, now)` is ticket `n` in the import format (the same dict a client posts to
`POST /api/v1/tickets` or puts in an import file): both pools, all four severities, late
answers, corrected times, reopened tickets, and tickets still open at `now`. Each ticket
depends only on (seed, n), so any size is a prefix of a larger one.

`write_history` stores N such tickets with bulk inserts and no ORM round trips, producing
exactly the rows `sla-monitor import` would have written at the instant `now`: tickets,
events, the audit chain (ticket.created, event.recorded, breach.detected in the same order
and with the same payloads), target states and breaches from the pure SLA clock, findings from
the pure finding rules, and the metric totals (rebuilt with the product's reconcile). A test
checks this at a small size against a real import, row for row and hash for hash.

    .venv/bin/python -m bench.history --tickets 20000 [--database URL]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Engine

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from monitor.audit.models import AuditRecord  # noqa: E402
from monitor.audit.service import GENESIS, canonical, record_hash  # noqa: E402
from monitor.breaches.findings import Facts, Thresholds, ticket_findings  # noqa: E402
from monitor.breaches.models import Breach, Finding  # noqa: E402
from monitor.core.clock import FixedClock  # noqa: E402
from monitor.core.db import session_scope  # noqa: E402
from monitor.core.settings import Settings  # noqa: E402
from monitor.demo.data import TITLES  # noqa: E402
from monitor.metrics.totals import reconcile  # noqa: E402
from monitor.sla.models import TargetState  # noqa: E402
from monitor.sla.service import SlaContext, load_context  # noqa: E402
from monitor.tickets.models import Event, Ticket  # noqa: E402
from monitor.tickets.schemas import TicketIn  # noqa: E402
from monitor.tickets.service import Actor, effective_timeline, judge_ticket  # noqa: E402

SEED = 13
# The instant the history is "imported": fixed, so a seed always gives the same database.
NOW = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)
IMPORTER = Actor("import", "admin", "import")
# Share of each severity in the evaluation's yearly counts.
SEVERITIES = {"anomaly": 46, "general": 45, "significant": 8, "major": 1}
LIMIT_MINUTES = {"general": 8 * 60, "significant": 4 * 60, "major": 2 * 60}
YEARS = 5
# Tickets reported in the last RECENT are often still being worked on at `now`.
RECENT = timedelta(days=3)


def draft(seed: int, n: int, now: datetime = NOW, years: int = YEARS) -> dict[str, Any]:
    """Ticket number `n` (from 1) of the history: a dict in the import format."""
    rng = random.Random(seed * 1_000_003 + n)
    pool = "pool1" if rng.random() < 0.5 else "pool2"
    severity = rng.choices(list(SEVERITIES), list(SEVERITIES.values()))[0]
    # Mostly spread over the years, a few per cent in the last days (the open work).
    if rng.random() < 0.01:
        reported = now - timedelta(minutes=rng.randrange(5, int(RECENT.total_seconds() // 60)))
    else:
        reported = now - timedelta(minutes=rng.randrange(60 * 24 * 4, years * 365 * 24 * 60))
    reported = reported.replace(second=0, microsecond=0)
    late = rng.random() < 0.08

    def minutes(low: float, high: float) -> timedelta:
        return timedelta(minutes=round(rng.uniform(low, high)))

    events: list[dict[str, Any]] = [{"type": "reported", "at": reported}]
    if severity == "anomaly":
        first = minutes(25 * 60, 40 * 60) if late else minutes(10, 20 * 60)
        events.append({"type": "user_notified", "at": reported + first})
        resolved = reported + first + minutes(30, 600)
    else:
        limit = LIMIT_MINUTES[severity]
        late_answer = late and rng.random() < 0.3
        first = minutes(31, 90) if late_answer else minutes(2, 25)
        kind = "arrived" if severity == "major" else "acknowledged"
        events.append({"type": kind, "at": reported + first})
        fix = minutes(limit + 5, limit * 3) if late and not late_answer else minutes(20, limit)
        resolved = reported + max(fix, first + timedelta(minutes=5))
    stays_open = rng.random() < (0.5 if now - reported < RECENT else 0.002)
    if not stays_open:
        events.append({"type": "resolved", "at": resolved})
        if rng.random() < 0.85:
            events[-1]["evidence"] = [f"恢复记录-{pool}-{n:07d}.png"]
        if rng.random() < 0.03:
            # The fault came back: reopened, then resolved again.
            again = resolved + minutes(30, 24 * 60)
            events.append({"type": "reopened", "at": again, "note": "用户反馈故障复现"})
            resolved = again + minutes(20, 6 * 60)
            events.append({"type": "resolved", "at": resolved})
        events.append({"type": "verified", "at": resolved + minutes(20, 26 * 60)})
        if severity == "major":
            days = timedelta(days=rng.choice((1, 2, 5)))
            events.append({"type": "report_submitted", "at": resolved + days})
    events = [e for e in events if e["at"] <= now]
    for i, e in enumerate(events):
        e["id"] = f"e{i + 1}"
    if len(events) > 1 and rng.random() < 0.05:
        wrong = events[1]
        true_time = wrong["at"]
        wrong["at"] = true_time + timedelta(minutes=rng.randint(40, 180))
        events.append(
            {
                "id": f"e{len(events) + 1}",
                "type": "correction",
                "corrects": wrong["id"],
                "at": true_time,
                "reason": "时间误填为登记时间，按现场记录更正",
            }
        )
    for e in events:
        e["at"] = e["at"].isoformat()
    prefix = "YY" if pool == "pool1" else "DX"
    return {
        "external_id": f"{prefix}-{n:07d}",
        "pool": pool,
        "severity": severity,
        "title": rng.choice(TITLES[severity]),
        "source": rng.choice(("monitoring", "monitoring", "user_report", "inspection")),
        "events": events,
    }


def drafts(seed: int, count: int, now: datetime = NOW, start: int = 1) -> Iterator[dict[str, Any]]:
    for n in range(start, start + count):
        yield draft(seed, n, now)


def write_import_file(path: Path, seed: int, count: int, now: datetime = NOW) -> int:
    """The same tickets as an import file; returns the number of events."""
    tickets = list(drafts(seed, count, now))
    path.write_text(json.dumps({"tickets": tickets}, ensure_ascii=False), encoding="utf-8")
    return sum(len(t["events"]) for t in tickets)


# Bulk writing ----------------------------------------------------------------------------


@dataclass
class Rows:
    """Rows of one batch, per table, in insertion order."""

    tickets: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    audit: list[dict[str, Any]] = field(default_factory=list)
    states: list[dict[str, Any]] = field(default_factory=list)
    breaches: list[dict[str, Any]] = field(default_factory=list)
    findings: list[dict[str, Any]] = field(default_factory=list)

    def tables(self) -> list[tuple[Any, list[dict[str, Any]]]]:
        return [
            (Ticket, self.tickets),
            (Event, self.events),
            (AuditRecord, self.audit),
            (TargetState, self.states),
            (Breach, self.breaches),
            (Finding, self.findings),
        ]

    def __len__(self) -> int:
        return len(self.tickets)


@dataclass
class Counters:
    """The next id of each table and the head of the audit chain."""

    ticket: int
    event: int
    breach: int
    finding: int
    audit_seq: int
    audit_hash: str


class Row(SimpleNamespace):
    """A row as plain attributes: what the pure core reads, without the ORM's bookkeeping
    (building SQLModel instances took a third of the time)."""


def _columns(obj: Row) -> dict[str, Any]:
    return dict(vars(obj))


class Writer:
    """Turns drafts into the rows a real import writes, continuing the ids and the chain."""

    def __init__(self, ctx: SlaContext, now: datetime, counters: Counters) -> None:
        self.ctx, self.now, self.c = ctx, now, counters
        self.actor = IMPORTER

    def _audit(
        self,
        rows: Rows,
        at: datetime,
        actor: str,
        action: str,
        entity: str,
        entity_id: str,
        payload: dict[str, Any],
    ) -> None:
        payload = json.loads(canonical(payload))
        seq, prev = self.c.audit_seq, self.c.audit_hash
        digest = record_hash(prev, seq, at, actor, action, entity, entity_id, payload)
        rows.audit.append(
            {
                "seq": seq,
                "at": at,
                "actor": actor,
                "action": action,
                "entity": entity,
                "entity_id": entity_id,
                "payload": payload,
                "prev_hash": prev,
                "hash": digest,
            }
        )
        self.c.audit_seq, self.c.audit_hash = seq + 1, digest

    def add(self, rows: Rows, raw: dict[str, Any] | TicketIn) -> None:
        ctx, now, actor = self.ctx, self.now, self.actor
        data = raw if isinstance(raw, TicketIn) else TicketIn.model_validate(raw)
        tid = self.c.ticket
        self.c.ticket += 1
        at = {i: ev.at.astimezone(UTC) for i, ev in enumerate(data.events)}
        reported = next(at[i] for i, ev in enumerate(data.events) if ev.type == "reported")
        policy = ctx.policies.in_force(reported.astimezone(ctx.tz).date())
        assert policy is not None
        ticket = Row(
            id=tid,
            pool=data.pool,
            external_id=data.external_id,
            severity=data.severity,
            current_severity=data.severity,
            title=data.title,
            description=data.description,
            source=data.source,
            units=list(data.units),
            systems=list(data.systems),
            policy_version=policy.version,
            status="open",
            reported_at=reported,
            created_at=now,
            updated_at=now,
            created_by=actor.name,
        )
        ticket_at = len(rows.tickets)
        rows.tickets.append({})  # filled once judged
        self._audit(
            rows,
            now,
            actor.name,
            "ticket.created",
            "ticket",
            str(tid),
            {
                "pool": ticket.pool,
                "external_id": ticket.external_id,
                "severity": ticket.severity,
                "title": ticket.title,
                "source": ticket.source,
                "policy_version": ticket.policy_version,
                "units": ticket.units,
                "systems": ticket.systems,
            },
        )
        events: list[Any] = []
        by_client: dict[str, Any] = {}
        for i, ev in enumerate(data.events):
            corrected = by_client.get(ev.corrects) if ev.corrects else None
            row = Row(
                id=self.c.event,
                ticket_id=tid,
                seq=i + 1,
                client_id=ev.id,
                type=ev.type,
                occurred_at=at[i],
                recorded_at=now,
                actor=actor.name,
                actor_role=actor.role,
                source=actor.source,
                note=ev.note,
                evidence=list(ev.evidence),
                severity=ev.severity,
                corrects_id=corrected.id if corrected else None,
                reason=ev.reason,
            )
            self.c.event += 1
            events.append(row)
            if ev.id:
                by_client[ev.id] = row
            rows.events.append(_columns(row))
            self._audit(
                rows,
                now,
                actor.name,
                "event.recorded",
                "ticket",
                str(tid),
                {
                    "pool": ticket.pool,
                    "external_id": ticket.external_id,
                    "seq": row.seq,
                    "event_id": ev.id,
                    "type": ev.type,
                    "at": at[i].isoformat(),
                    "recorded_at": now.isoformat(),
                    "source": actor.source,
                    "role": actor.role,
                    "severity": ev.severity,
                    "corrects": corrected.seq if corrected else None,
                    "reason": ev.reason,
                    "note": ev.note,
                    "evidence": list(ev.evidence),
                },
            )
        timeline = effective_timeline(events)
        ticket.reported_at = next(x.at for x in timeline if x.type == "reported")
        judgement = judge_ticket(ctx, cast(Ticket, ticket), events, now)
        states = [
            Row(
                ticket_id=tid,
                target=res.target,
                name=res.name,
                pool=ticket.pool,
                severity=judgement.severity,
                policy_version=ticket.policy_version,
                status=res.status,
                start=res.start,
                deadline=res.deadline,
                stop=res.stop,
                risk_at=res.risk_at,
                elapsed_seconds=None if res.elapsed is None else res.elapsed.total_seconds(),
                overrun_seconds=None if res.overrun is None else res.overrun.total_seconds(),
                paused_seconds=res.paused.total_seconds(),
                calendar=res.calendar,
                duration=res.duration,
                unknown_year=res.unknown_year,
                explain=res.explain,
                judged_at=now,
            )
            for res in judgement.targets
        ]
        rows.states += [_columns(s) for s in states]
        ticket.current_severity, ticket.status = judgement.severity, judgement.status
        rows.tickets[ticket_at] = _columns(ticket)
        for s in states:
            if s.status != "breached" or s.deadline is None:
                continue
            breach = Row(
                id=self.c.breach,
                ticket_id=tid,
                target=s.target,
                pool=ticket.pool,
                severity=s.severity,
                deadline=s.deadline,
                detected_at=now,
                cleared_at=None,
                review="pending",
                reviewed_at=None,
            )
            self.c.breach += 1
            rows.breaches.append(_columns(breach))
            self._audit(
                rows,
                now,
                "system",
                "breach.detected",
                "breach",
                str(breach.id),
                {
                    "ticket": tid,
                    "target": s.target,
                    "pool": ticket.pool,
                    "severity": s.severity,
                    "deadline": s.deadline.isoformat(),
                },
            )
        limits = Thresholds.of(ctx.settings)
        facts = Facts(
            cast(Ticket, ticket),
            events,
            timeline,
            cast(list[TargetState], states),
            policy,
            now,
            ctx.tz,
            limits,
        )
        found = ticket_findings(facts)
        for f in {f.key: f for f in found}.values():
            rows.findings.append(
                {
                    "id": self.c.finding,
                    "kind": f.kind,
                    "key": f.key,
                    "ticket_id": tid,
                    "pool": ticket.pool,
                    "detail": f.detail,
                    "opened_at": now,
                    "closed_at": None,
                }
            )
            self.c.finding += 1


def _counters(engine: Engine) -> Counters:
    with engine.connect() as conn:

        def next_id(table: str, column: str = "id") -> int:
            return (
                int(
                    conn.execute(
                        sa.text(f"SELECT coalesce(max({column}), 0) FROM {table}")
                    ).scalar_one()
                )
                + 1
            )

        head = conn.execute(
            sa.text("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        ).first()
        return Counters(
            ticket=next_id("tickets"),
            event=next_id("events"),
            breach=next_id("breaches"),
            finding=next_id("findings"),
            audit_seq=(head[0] + 1) if head else 1,
            audit_hash=head[1] if head else GENESIS,
        )


def _flush(engine: Engine, rows: Rows) -> None:
    with engine.begin() as conn:
        for model, batch in rows.tables():
            if batch:
                conn.execute(sa.insert(model.__table__), batch)


def _after_bulk(engine: Engine) -> None:
    """Move PostgreSQL's id sequences past the explicit ids, and refresh planner statistics."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            for table in ("tickets", "events", "breaches", "findings"):
                conn.execute(
                    sa.text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"coalesce((SELECT max(id) FROM {table}), 0) + 1, false)"
                    )
                )
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE"))
    else:
        with engine.begin() as conn:
            conn.execute(sa.text("ANALYZE"))


def write_history(
    engine: Engine,
    settings: Settings,
    count: int,
    *,
    seed: int = SEED,
    now: datetime = NOW,
    batch: int = 5000,
    progress: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Store `count` generated tickets as a real import at `now` would; returns row counts."""
    clock = FixedClock(now)
    with session_scope(engine) as session:
        ctx = load_context(session, settings, clock)  # records the policy versions, as import does
    writer = Writer(ctx, now, _counters(engine))
    first = writer.c.ticket
    rows = Rows()
    for raw in drafts(seed, count, now, start=first):
        writer.add(rows, raw)
        if len(rows) >= batch:
            _flush(engine, rows)
            if progress:
                progress(len(rows))
            rows = Rows()
    _flush(engine, rows)
    if progress and len(rows):
        progress(len(rows))
    with session_scope(engine) as session:
        reconcile(session)
    _after_bulk(engine)
    with engine.connect() as conn:
        return {
            table: int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())
            for table in ("tickets", "events", "audit_log", "target_states", "breaches", "findings")
        }


def main() -> None:
    from monitor.core.db import ensure_schema, make_engine

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--database", required=True, help="an empty database's URL")
    args = parser.parse_args()
    engine = make_engine(args.database)
    ensure_schema(engine)
    settings = Settings(database_url=args.database, config_dir=ROOT / "config")
    began = time.perf_counter()
    counts = write_history(engine, settings, args.tickets, seed=args.seed)
    took = time.perf_counter() - began
    print(json.dumps({**counts, "seconds": round(took, 1)}))


if __name__ == "__main__":
    main()
