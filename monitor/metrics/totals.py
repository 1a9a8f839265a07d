"""Running totals behind the largest metric families, kept in the same transaction as the
writes they count, so a scrape reads a few hundred rows instead of every target state.

Writers collect changes in a `Deltas` that the write flow applies once, at the end of its
unit of work and in key order (so concurrent writers never deadlock on them); a rollback
takes them back with everything else. `drift` recomputes every total from the rows
themselves; the daily job corrects any difference (reading by `snapshot_drift`, with no
write lock held), and tests check that the running totals always equal it (`reconcile`).
"""

from __future__ import annotations

import functools
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from monitor.breaches.models import Breach
from monitor.core.batch import add_rows
from monitor.core.db import read_scope
from monitor.metrics.models import MetricTotal
from monitor.metrics.names import DURATION_BUCKETS, HISTOGRAM_TARGETS
from monitor.sla.models import JudgedState, TargetState

TARGETS = "targets"  # labels: pool, severity, target, status
BREACHES = "breaches"  # labels: pool, severity, target, review (or "cleared")
DURATIONS = "durations"  # labels: target, pool, severity, bucket index


@functools.lru_cache(maxsize=4096)
def _labels_key(labels: tuple[str | int, ...]) -> str:
    """A total's labels as stored: their JSON array. Made once per set of labels (a few
    hundred sets, met again on every write; encoding them was a write's most frequent JSON)."""
    return json.dumps(list(labels), ensure_ascii=False)


def bucket_of(seconds: float) -> int:
    for i, bound in enumerate(DURATION_BUCKETS):
        if seconds <= bound:
            return i
    return len(DURATION_BUCKETS)


def _zero() -> list[float]:
    return [0, 0.0]


class Deltas:
    """Changes to the running totals, collected during a unit of work and applied once."""

    def __init__(self) -> None:
        self._rows: defaultdict[tuple[str, str], list[float]] = defaultdict(_zero)

    def merge(self, other: Deltas) -> None:
        """Add another unit's changes (an import's worker counts a chunk's) to these."""
        for key, (count, total) in other._rows.items():
            entry = self._rows[key]
            entry[0] += count
            entry[1] += total

    def add(self, family: str, labels: Iterable[str | int], count: int, total: float = 0.0) -> None:
        entry = self._rows[(family, _labels_key(tuple(labels)))]
        entry[0] += count
        entry[1] += total

    def count_state(self, state: JudgedState, sign: int) -> None:
        for family, labels, total in state_keys(state):
            self.add(family, labels, sign, sign * total)

    def count_breach(self, breach: Breach, sign: int) -> None:
        self.add(BREACHES, breach_labels(breach), sign)

    def apply(self, session: Session) -> None:
        """Write the collected changes in key order, then forget them."""
        rows = [
            {"family": family, "labels": labels, "count": int(count), "total": total}
            for (family, labels), (count, total) in sorted(self._rows.items())
            if count or total
        ]
        self._rows.clear()
        if rows:
            _upsert(session, rows)


def state_keys(state: JudgedState) -> list[tuple[str, list[str | int], float]]:
    """What one target state contributes to the totals."""
    keys: list[tuple[str, list[str | int], float]] = [
        (TARGETS, [state.pool, state.severity, state.target, state.status], 0.0)
    ]
    if (
        state.target in HISTOGRAM_TARGETS.values()
        and state.stop is not None
        and state.elapsed_seconds is not None
    ):
        keys.append(
            (
                DURATIONS,
                [state.target, state.pool, state.severity, bucket_of(state.elapsed_seconds)],
                state.elapsed_seconds,
            )
        )
    return keys


def breach_labels(breach: Breach) -> list[str]:
    review = "cleared" if breach.cleared_at is not None else breach.review
    return [breach.pool, breach.severity, breach.target, review]


def _upsert(session: Session, rows: list[dict[str, object]]) -> None:
    # By the driver (no flush first: nothing the session holds is in this table); through
    # SQLAlchemy, building the statement was a tenth of every write's time, and PostgreSQL's
    # executemany pipeline polled while it waited.
    add_rows(session, MetricTotal.__table__, rows, key=("family", "labels"))  # type: ignore[attr-defined]


def computed(session: Session) -> dict[tuple[str, str], tuple[int, float]]:
    """Every total as the rows themselves say."""
    out: dict[tuple[str, str], tuple[int, float]] = {}
    rows = session.execute(
        sa.select(
            col(TargetState.pool),
            col(TargetState.severity),
            col(TargetState.target),
            col(TargetState.status),
            sa.func.count(),
        ).group_by(
            col(TargetState.pool),
            col(TargetState.severity),
            col(TargetState.target),
            col(TargetState.status),
        )
    ).all()
    for pool, severity, target, status, n in rows:
        out[(TARGETS, _labels_key((pool, severity, target, status)))] = (n, 0.0)
    elapsed = col(TargetState.elapsed_seconds)
    bucket = sa.case(
        *((elapsed <= b, i) for i, b in enumerate(DURATION_BUCKETS)), else_=len(DURATION_BUCKETS)
    )
    rows = session.execute(
        sa.select(
            col(TargetState.target),
            col(TargetState.pool),
            col(TargetState.severity),
            bucket,
            sa.func.count(),
            sa.func.sum(elapsed),
        )
        .where(
            col(TargetState.target).in_(list(HISTOGRAM_TARGETS.values())),
            col(TargetState.stop).is_not(None),
            elapsed.is_not(None),
        )
        .group_by(col(TargetState.target), col(TargetState.pool), col(TargetState.severity), bucket)
    ).all()
    for target, pool, severity, index, n, total in rows:
        key = _labels_key((target, pool, severity, int(index)))
        out[(DURATIONS, key)] = (n, float(total or 0))
    review = sa.case((col(Breach.cleared_at).is_not(None), "cleared"), else_=Breach.review)
    rows = session.execute(
        sa.select(
            col(Breach.pool), col(Breach.severity), col(Breach.target), review, sa.func.count()
        ).group_by(col(Breach.pool), col(Breach.severity), col(Breach.target), review)
    ).all()
    for pool, severity, target, state, n in rows:
        out[(BREACHES, _labels_key((pool, severity, target, state)))] = (n, 0.0)
    return out


def stored(session: Session) -> dict[tuple[str, str], tuple[int, float]]:
    return {
        (t.family, t.labels): (t.count, t.total)
        for t in session.exec(select(MetricTotal)).all()
        if t.count
    }


@dataclass
class Drift:
    """How far the totals stood from the rows in one snapshot: the changes that bring them
    back (`changes`, deltas: applied on top of whatever writers added since, they give what
    the rows say then too) and how many totals were wrong."""

    changes: Deltas
    wrong: int


def drift(session: Session) -> Drift:
    """Compare every total with the rows, as one snapshot shows both (`snapshot_drift`, or
    a transaction no writer can change under it)."""
    truth, have = computed(session), stored(session)
    changes, wrong = Deltas(), 0
    for key in sorted(set(truth) | set(have)):
        t, h = truth.get(key, (0, 0.0)), have.get(key, (0, 0.0))
        if not _close(t, h):
            changes._rows[key] = [t[0] - h[0], t[1] - h[1]]
            wrong += 1
    return Drift(changes, wrong)


def snapshot_drift(engine: Engine) -> Drift:
    """`drift` read outside any write: the daily job's whole-table reads (every target
    state: with no index of their own, the write path's cheapest) hold no write lock and
    block no writer. A read transaction is one snapshot on SQLite; PostgreSQL's must be
    asked for one (REPEATABLE READ), or its statements would each see later commits. A
    writer's rows and its deltas commit together, so a snapshot holds both or neither."""
    with read_scope(engine) as session:
        if engine.dialect.name == "postgresql":
            session.connection().exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        return drift(session)


def reconcile(session: Session) -> int:
    """Correct the totals from the rows in this one transaction; returns how many were
    wrong. For a transaction alone on the database (a migration, a test); the daily job
    reads by `snapshot_drift` first."""
    if session.get_bind().dialect.name == "postgresql":
        # Writers apply their deltas at commit: holding this lock first means every write is
        # either fully in the rows read below or applies its delta after this correction.
        session.execute(sa.text("LOCK TABLE metric_totals IN EXCLUSIVE MODE"))
    found = drift(session)
    found.changes.apply(session)
    return found.wrong


def _close(a: tuple[int, float] | None, b: tuple[int, float] | None) -> bool:
    a = a or (0, 0.0)
    b = b or (0, 0.0)
    return a[0] == b[0] and abs(a[1] - b[1]) <= 1e-6 * max(1.0, abs(a[1]))
