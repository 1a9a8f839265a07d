"""One collector on its own registry: every figure is read from the database at scrape time
with aggregate queries, so every replica answers the same."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from monitor.breaches.findings import KINDS
from monitor.breaches.models import Breach, Finding
from monitor.calendars.calendar import package_arrangements
from monitor.calendars.models import CalendarLoad
from monitor.calendars.service import config_arrangements
from monitor.catalog.models import load_catalog
from monitor.core.db import read_scope
from monitor.core.settings import Settings
from monitor.metrics import totals
from monitor.metrics.models import MetricTotal
from monitor.metrics.names import DURATION_BUCKETS, HISTOGRAM_TARGETS, METRICS
from monitor.notifications.service import outbox_stats
from monitor.scheduler.models import JobRun, Lease
from monitor.scoring.rules import load_indicators, occurrences_of, points_after
from monitor.sla.models import PolicyVersion
from monitor.sla.vocab import Review, TicketStatus
from monitor.tickets.models import Ticket


def _doc(name: str, kind: str) -> tuple[str, list[str]]:
    declared, doc, labels = METRICS[name]
    assert declared == kind, f"{name} is declared a {declared}"
    return doc, list(labels)


def gauge(name: str) -> GaugeMetricFamily:
    doc, labels = _doc(name, "gauge")
    return GaugeMetricFamily(name, doc, labels=labels)


def counter(name: str) -> CounterMetricFamily:
    doc, labels = _doc(name, "counter")
    return CounterMetricFamily(name.removesuffix("_total"), doc, labels=labels)


def histogram(name: str) -> HistogramMetricFamily:
    doc, labels = _doc(name, "histogram")
    return HistogramMetricFamily(name, doc, labels=labels)


class SlaCollector(Collector):
    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine, self.settings = engine, settings
        self.pools = load_catalog(settings.config_dir).pool_ids

    def collect(self) -> Iterator[Metric]:
        with read_scope(self.engine) as session:
            yield from self._tickets(session)
            yield from self._targets(session)
            yield from self._breaches(session)
            yield from self._indicators(session)
            yield from self._findings(session)
            yield from self._scheduler(session)
            yield from self._histograms(session)
            yield from self._notifications(session)

    def _severities(self, session: Session) -> list[str]:
        rows = session.exec(select(PolicyVersion).order_by(col(PolicyVersion.effective_from))).all()
        return list(rows[-1].body["severities"]) if rows else []

    def _tickets(self, session: Session) -> Iterator[Metric]:
        family = gauge("slamon_tickets_open")
        counts: dict[tuple[str, str], int] = defaultdict(int)
        for pool in self.pools:
            for severity in self._severities(session):
                counts[(pool, severity)] = 0
        rows = session.exec(
            select(Ticket.pool, Ticket.current_severity, sa.func.count())
            .where(Ticket.status == TicketStatus.OPEN)
            .group_by(col(Ticket.pool), col(Ticket.current_severity))
        ).all()
        for pool, severity, n in rows:
            counts[(pool, severity)] = n
        for labels, n in sorted(counts.items()):
            family.add_metric(list(labels), n)
        yield family

    def _totals(self, session: Session, family: str) -> list[tuple[list[Any], int, float]]:
        rows = session.exec(select(MetricTotal).where(MetricTotal.family == family)).all()
        return [(json.loads(r.labels), r.count, r.total) for r in rows if r.count]

    def _targets(self, session: Session) -> Iterator[Metric]:
        family = gauge("slamon_sla_targets")
        for labels, n, _ in sorted(self._totals(session, totals.TARGETS)):
            family.add_metric([str(x) for x in labels], n)
        yield family

    def _breaches(self, session: Session) -> Iterator[Metric]:
        family = counter("slamon_sla_breaches_total")
        counts = {
            tuple(map(str, labels)): n for labels, n, _ in self._totals(session, totals.BREACHES)
        }
        # Every pool × target starts at 0 pending: a series born at 1 shows no increase(),
        # and the first breach of a pool's target would never fire SlaBreachDetected.
        rows = session.exec(select(PolicyVersion).order_by(col(PolicyVersion.effective_from))).all()
        for severity, level in (rows[-1].body["severities"] if rows else {}).items():
            for target in level["targets"]:
                for pool in self.pools:
                    counts.setdefault((pool, severity, target["id"], str(Review.PENDING)), 0)
        for labels, n in sorted(counts.items()):
            family.add_metric(list(labels), n)
        yield family

    def _indicators(self, session: Session) -> Iterator[Metric]:
        score = gauge("slamon_indicator_score")
        occurrences = gauge("slamon_indicator_occurrences")
        pending = gauge("slamon_indicator_pending_breaches")
        tz = self.settings.tz
        first, last = session.exec(
            select(sa.func.min(Ticket.reported_at), sa.func.max(Ticket.reported_at))
        ).one()
        years: list[int] = []
        if first is not None and last is not None:
            years = list(
                range(_aware(first).astimezone(tz).year, _aware(last).astimezone(tz).year + 1)
            )
        for indicator in load_indicators(self.settings.config_dir).indicators:
            rule = indicator.rule
            # The standing breaches of in-scope tickets are few: read them, bucket by year.
            rows = session.execute(
                sa.select(col(Breach.ticket_id), col(Breach.review), col(Ticket.reported_at))
                .join(Ticket, col(Ticket.id) == Breach.ticket_id)
                .where(
                    col(Breach.cleared_at).is_(None),
                    col(Breach.review) != Review.WAIVED,
                    col(Breach.severity).in_(rule.severities),
                    col(Ticket.current_severity).in_(rule.severities),
                )
            ).all()
            standing: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
            waiting: dict[int, int] = defaultdict(int)
            for ticket_id, review, reported_at in rows:
                year = _aware(reported_at).astimezone(tz).year
                standing[year][ticket_id] += 1
                waiting[year] += review == Review.PENDING
            for year in years:
                n = occurrences_of(rule, list(standing[year].values()))
                labels = [indicator.id, str(year)]
                score.add_metric(labels, points_after(rule, indicator.points, n))
                occurrences.add_metric(labels, n)
                pending.add_metric(labels, waiting[year])
        yield from (score, occurrences, pending)

    def _findings(self, session: Session) -> Iterator[Metric]:
        family = gauge("slamon_findings_open")
        counts = dict.fromkeys(KINDS, 0)
        for kind, n in session.exec(
            select(Finding.kind, sa.func.count())
            .where(col(Finding.closed_at).is_(None))
            .group_by(col(Finding.kind))
        ).all():
            counts[kind] = n
        for kind, n in sorted(counts.items()):
            family.add_metric([kind], n)
        yield family

    def _scheduler(self, session: Session) -> Iterator[Metric]:
        sweep = gauge("slamon_sweep_last_success_timestamp_seconds")
        run = session.get(JobRun, "detect_breaches")
        if run is not None:
            sweep.add_metric([], run.last_success.timestamp())
        yield sweep
        leader = gauge("slamon_scheduler_leader")
        lease = session.get(Lease, "scheduler")
        now = datetime.now(UTC)
        if lease is not None and lease.expires_at >= now:
            leader.add_metric([lease.holder], 1)
        else:
            leader.add_metric([""], 0)
        yield leader
        calendar = gauge("slamon_calendar_last_known_year")
        years = [a.year for a in package_arrangements()]
        years += [a.year for a in config_arrangements(self.settings.config_dir)]
        loaded = session.exec(select(sa.func.max(CalendarLoad.year))).one()
        if loaded is not None:
            years.append(loaded)
        calendar.add_metric([], max(years))
        yield calendar

    def _histograms(self, session: Session) -> Iterator[Metric]:
        series: dict[tuple[str, str, str], tuple[list[int], list[float]]] = {}
        for (target, pool, severity, index), n, total in self._totals(session, totals.DURATIONS):
            counts, sums = series.setdefault(
                (target, pool, severity), ([0] * (len(DURATION_BUCKETS) + 1), [0.0])
            )
            counts[index] += n
            sums[0] += total
        for name, target in HISTOGRAM_TARGETS.items():
            family = histogram(name)
            for (t, pool, severity), (counts, sums) in sorted(series.items()):
                if t != target:
                    continue
                running, points = 0, []
                for bound, n in zip(DURATION_BUCKETS, counts, strict=False):
                    running += n
                    points.append((str(float(bound)), float(running)))
                points.append(("+Inf", float(sum(counts))))
                family.add_metric([pool, severity], points, sums[0])
            yield family

    def _notifications(self, session: Session) -> Iterator[Metric]:
        stats = outbox_stats(session)
        total = counter("slamon_notifications_total")
        for kind, channel, result, n in sorted(stats.attempts):
            total.add_metric([kind, channel, result], n)
        yield total
        outbox = gauge("slamon_notifications_outbox")
        for channel, status, n in sorted(stats.undelivered):
            outbox.add_metric([channel, status], n)
        yield outbox
        age = gauge("slamon_notifications_oldest_undelivered_age_seconds")
        oldest = stats.oldest_undelivered
        waited = 0.0 if oldest is None else (datetime.now(UTC) - oldest).total_seconds()
        age.add_metric([], max(0.0, waited))
        yield age


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def make_registry(engine: Engine, settings: Settings) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SlaCollector(engine, settings))
    return registry
