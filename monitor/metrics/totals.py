"""Running totals behind the largest metric families, kept in the same transaction as the
writes they count, so a scrape reads a few hundred rows instead of every target state.

Writers record deltas on the session; they are applied just before commit, in key order
(so concurrent writers never deadlock on them) and vanish with a rollback. `reconcile`
recomputes every total from the rows themselves; the daily job runs it, and tests check
that the running totals always equal it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Field, Session, SQLModel, col, select

from monitor.breaches.models import Breach
from monitor.metrics.names import DURATION_BUCKETS, HISTOGRAM_TARGETS
from monitor.sla.models import TargetState

TARGETS = "targets"  # labels: pool, severity, target, status
BREACHES = "breaches"  # labels: pool, severity, target, review (or "cleared")
DURATIONS = "durations"  # labels: target, pool, severity, bucket index
DELTAS = "metric_deltas"


class MetricTotal(SQLModel, table=True):
    __tablename__ = "metric_totals"

    family: str = Field(max_length=16, primary_key=True)
    labels: str = Field(max_length=400, primary_key=True, description="JSON list of values")
    count: int = 0
    total: float = 0.0


def bucket_of(seconds: float) -> int:
    for i, bound in enumerate(DURATION_BUCKETS):
        if seconds <= bound:
            return i
    return len(DURATION_BUCKETS)


def add(
    session: Session, family: str, labels: Iterable[str | int], count: int, total: float = 0.0
) -> None:
    """Record a change to apply when the session commits."""
    deltas = session.info.setdefault(DELTAS, defaultdict(lambda: [0, 0.0]))
    entry = deltas[(family, json.dumps(list(labels), ensure_ascii=False))]
    entry[0] += count
    entry[1] += total


def state_keys(state: TargetState) -> list[tuple[str, list[str | int], float]]:
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


def count_state(session: Session, state: TargetState, sign: int) -> None:
    for family, labels, total in state_keys(state):
        add(session, family, labels, sign, sign * total)


def breach_labels(breach: Breach) -> list[str]:
    review = "cleared" if breach.cleared_at is not None else breach.review
    return [breach.pool, breach.severity, breach.target, review]


def count_breach(session: Session, breach: Breach, sign: int) -> None:
    add(session, BREACHES, breach_labels(breach), sign)


def _upsert(session: Session, rows: list[dict[str, object]]) -> None:
    dialect = session.get_bind().dialect.name
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(MetricTotal)
    stmt = insert.on_conflict_do_update(
        index_elements=["family", "labels"],
        set_={
            "count": col(MetricTotal.count) + insert.excluded.count,
            "total": col(MetricTotal.total) + insert.excluded.total,
        },
    )
    session.execute(stmt, rows)


@event.listens_for(Session, "before_commit")
def _apply(session: Session) -> None:
    deltas = session.info.pop(DELTAS, None)
    if not deltas:
        return
    rows = [
        {"family": family, "labels": labels, "count": count, "total": total}
        for (family, labels), (count, total) in sorted(deltas.items())
        if count or total
    ]
    if rows:
        _upsert(session, rows)


@event.listens_for(Session, "after_rollback")
def _discard(session: Session) -> None:
    session.info.pop(DELTAS, None)


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
        out[(TARGETS, json.dumps([pool, severity, target, status], ensure_ascii=False))] = (n, 0.0)
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
        key = json.dumps([target, pool, severity, int(index)], ensure_ascii=False)
        out[(DURATIONS, key)] = (n, float(total or 0))
    review = sa.case((col(Breach.cleared_at).is_not(None), "cleared"), else_=Breach.review)
    rows = session.execute(
        sa.select(
            col(Breach.pool), col(Breach.severity), col(Breach.target), review, sa.func.count()
        ).group_by(col(Breach.pool), col(Breach.severity), col(Breach.target), review)
    ).all()
    for pool, severity, target, state, n in rows:
        out[(BREACHES, json.dumps([pool, severity, target, state], ensure_ascii=False))] = (n, 0.0)
    return out


def stored(session: Session) -> dict[tuple[str, str], tuple[int, float]]:
    return {
        (t.family, t.labels): (t.count, t.total)
        for t in session.exec(select(MetricTotal)).all()
        if t.count
    }


def reconcile(session: Session, now: datetime | None = None) -> int:
    """Rewrite the totals from the rows; returns how many totals were wrong."""
    if session.get_bind().dialect.name == "postgresql":
        # Writers apply their deltas at commit: holding this lock first means every write is
        # either fully in the rows read below or applies its delta after this rewrite.
        session.execute(sa.text("LOCK TABLE metric_totals IN EXCLUSIVE MODE"))
    truth = computed(session)
    have = stored(session)
    wrong = sum(
        1 for key in set(truth) | set(have) if _close(truth.get(key), have.get(key)) is False
    )
    session.execute(sa.delete(MetricTotal))
    session.info.pop(DELTAS, None)
    if truth:
        session.execute(
            sa.insert(MetricTotal),
            [
                {"family": f, "labels": labels, "count": n, "total": total}
                for (f, labels), (n, total) in sorted(truth.items())
            ],
        )
    del now
    return wrong


def _close(a: tuple[int, float] | None, b: tuple[int, float] | None) -> bool:
    a = a or (0, 0.0)
    b = b or (0, 0.0)
    return a[0] == b[0] and abs(a[1] - b[1]) <= 1e-6 * max(1.0, abs(a[1]))
