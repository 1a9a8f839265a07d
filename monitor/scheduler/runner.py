"""The in-process scheduler: one table of named jobs, run only by the lease holder.

The breach job does not poll: it wakes at the next deadline or warning instant, is re-armed
whenever a write brings that instant earlier, and a slow safety sweep runs behind it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.engine import Engine
from sqlmodel import Session

from monitor.core import wake
from monitor.core.clock import Clock
from monitor.core.db import read_scope, session_scope
from monitor.core.settings import Settings
from monitor.judging.flow import write_flow
from monitor.judging.jobs import detect_breaches, refresh_findings
from monitor.metrics.jobs import reconcile_metrics
from monitor.metrics.totals import snapshot_drift
from monitor.notifications.jobs import notify_review_due, send_notifications
from monitor.notifications.sender import Worker, next_due
from monitor.scheduler.lease import acquire, release
from monitor.scheduler.models import JobRun
from monitor.scheduler.wake import next_wake
from monitor.sla.service import ContextCache, load_context

log = logging.getLogger(__name__)
LEASE = "scheduler"


@dataclass(frozen=True)
class Job:
    name: str
    func: Callable[..., Any]
    why: str
    # The job opens its own short transactions (it talks to the outside world in between):
    # it is called with (engine, settings, clock) instead of a WriteFlow.
    own_transactions: bool = False
    # What the job reads before its write transaction begins, given the engine (a long read
    # that must not hold SQLite's write lock); its result is the job's second argument.
    reads_first: Callable[[Engine], Any] | None = None


JOBS: dict[str, Job] = {
    job.name: job
    for job in (
        Job(
            "detect_breaches",
            detect_breaches,
            "marks clocks breached or at risk the moment their deadline or warning passes",
        ),
        Job(
            "refresh_findings",
            refresh_findings,
            "raises findings that only the passing of time creates (overdue, next year's calendar)",
        ),
        Job(
            "send_notifications",
            send_notifications,
            "delivers the notice outbox to WeCom, DingTalk, e-mail and webhooks, with retries",
            own_transactions=True,
        ),
        Job(
            "notify_review_due",
            notify_review_due,
            "tells the supervision unit of breaches left unreviewed too long",
        ),
        Job(
            "reconcile_metrics",
            reconcile_metrics,
            "corrects the metric totals from the rows, so any drift lasts a day at most",
            reads_first=snapshot_drift,
        ),
    )
}


def count(result: Any) -> int:
    """How many things a job changed, whatever it returns."""
    if isinstance(result, int):
        return result
    changed = getattr(result, "changed", None)
    return changed if isinstance(changed, int) else len(result)


def run_job(
    engine: Engine,
    settings: Settings,
    clock: Clock,
    name: str,
    holder: str = "cli",
    contexts: ContextCache | None = None,
) -> Any:
    """Run one job in its own transaction and record its success; `sla-monitor check` and the
    scheduler both come through here."""
    job = JOBS[name]
    if job.own_transactions:
        result = job.func(engine, settings, clock)
        if count(result):
            with session_scope(engine) as session:
                record_success(session, name, holder, clock.now(), count(result))
        return result
    read = () if job.reads_first is None else (job.reads_first(engine),)
    with session_scope(engine) as session:
        ctx = contexts.get(session) if contexts else load_context(session, settings, clock)
        with write_flow(session, ctx) as flow:
            result = job.func(flow, *read)
        record_success(session, name, holder, clock.now(), count(result))
    return result


def record_success(session: Session, name: str, holder: str, now: datetime, changed: int) -> None:
    row = session.get(JobRun, name)
    if row is None:
        row = JobRun(job=name, last_success=now, holder=holder, changed=changed)
    else:
        row.last_success, row.holder, row.changed = now, holder, changed
    session.add(row)


RETRY_AFTER_FAILURE = timedelta(seconds=5)


class Runner:
    """Runs the job table inside a server process while it holds the leader lease."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        clock: Clock,
        *,
        holder: str | None = None,
        lease_ttl: timedelta | None = None,
        safety_interval: timedelta = timedelta(seconds=60),
    ) -> None:
        self.engine, self.settings, self.clock = engine, settings, clock
        # An opaque name: metrics and /readyz show it, and they must not name hosts or pids.
        self.holder = holder or uuid.uuid4().hex[:12]
        log.info("scheduler %s is process %d on %s", self.holder, os.getpid(), socket.gethostname())
        self.lease_ttl = lease_ttl or timedelta(seconds=settings.lease_seconds)
        self.safety_interval = safety_interval
        self.is_leader = False
        self.armed_at: datetime | None = None
        self.rearmed = threading.Event()  # set whenever a wake is armed (tests wait on it)
        self.last_latency: timedelta | None = None
        self._lock = threading.Lock()
        self._arming = threading.Lock()  # (writes, the SQLite receiver and sweeps all re-arm)
        # After a failed sweep, a wake already due waits this long instead of running again at
        # once: every commit seen on SQLite would otherwise re-arm it, four times a second.
        self._retry_at: datetime | None = None
        self.receiver = wake.Receiver(
            engine, self._on_write, self._on_commit, lambda: self.is_leader
        )
        self.sender = Worker(
            lambda: run_job(engine, settings, clock, "send_notifications", self.holder),
            lambda: self.is_leader,
            clock,
        )
        # Catalog, policies and calendar read once, as the API does: re-reading the config
        # files on every wake was most of a wake's cost.
        self.contexts = ContextCache(settings, clock)
        self.scheduler = BackgroundScheduler(
            timezone=settings.tz,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30},
        )

    # Lease -----------------------------------------------------------------------------
    def renew(self) -> bool:
        """Take or renew the lease; on becoming leader, sweep at once and arm the wake."""
        with session_scope(self.engine) as session:
            leader = acquire(session, LEASE, self.holder, self.clock.now(), self.lease_ttl)
        became = leader and not self.is_leader
        if leader != self.is_leader:
            log.info("scheduler %s %s the lease", self.holder, "took" if leader else "lost")
        self.is_leader = leader
        if became and self.scheduler.running:
            # In its own job: a long first sweep must not hold up the renewals of the lease.
            self.scheduler.add_job(
                self.sweep, id="takeover", replace_existing=True, kwargs={"why": "takeover"}
            )
        elif became:
            self.sweep("takeover")
        if became:
            # Notices a dead leader claimed and never delivered are due now, not at the
            # sender's next poll: its thread may have gone to sleep before this lease came.
            self.sender.kick()
        return leader

    # Jobs ------------------------------------------------------------------------------
    def sweep(self, why: str = "wake") -> int:
        """Run the breach job now (if leader) and arm the next wake."""
        if not self.is_leader:
            return 0
        with self._lock:
            try:
                changes = run_job(
                    self.engine,
                    self.settings,
                    self.clock,
                    "detect_breaches",
                    self.holder,
                    self.contexts,
                )
            except Exception:
                log.exception("breach sweep (%s) failed", why)
                # Nothing is armed now: a deadline written next arms its wake (else every
                # one later than this wake's instant waited for the safety sweep).
                self.armed_at = None
                self._retry_at = self.clock.now() + RETRY_AFTER_FAILURE
                return 0
            self.armed_at, self._retry_at = None, None
            self._arm_next()
            return len(changes)

    def findings(self) -> None:
        if self.is_leader:
            for name in ("refresh_findings", "reconcile_metrics"):
                run_job(self.engine, self.settings, self.clock, name, self.holder, self.contexts)

    def _arm_next(self) -> None:
        with read_scope(self.engine) as session:
            instant = next_wake(session)
        if instant is not None:
            self.rearm(instant)

    def rearm(self, instant: datetime) -> None:
        """Wake at `instant` unless an earlier wake is already armed (or, after a failed
        sweep, not before `RETRY_AFTER_FAILURE` has passed)."""
        with self._arming:
            self._rearm(instant)

    def _rearm(self, instant: datetime) -> None:
        if self.armed_at is not None and self.armed_at <= instant:
            return
        self.armed_at = instant
        self.rearmed.set()
        run_at = max(instant, self.clock.now(), self._retry_at or instant)
        # A wake may come due while the sweep that armed it is still finishing (deadlines pass
        # during a slow sweep): it then waits for the lock instead of being skipped, which would
        # leave nothing armed until the safety sweep.
        self.scheduler.add_job(
            self.sweep,
            "date",
            run_date=run_at,
            id="breach_wake",
            replace_existing=True,
            max_instances=2,
            kwargs={"why": "wake"},
        )

    # Lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        try:
            with session_scope(self.engine) as session:
                self.contexts.get(session)  # loaded now, so a takeover does not wait for it
        except Exception:
            # A busy or unreachable database must not stop the server from starting (with
            # `serve --workers` the supervisor would stop every worker): the first sweep loads it.
            log.warning(
                "scheduler %s starts without the SLA rules loaded", self.holder, exc_info=True
            )
        renew_every = self.lease_ttl.total_seconds() / 3
        self.scheduler.add_job(
            self.renew, "interval", seconds=renew_every, id="lease", next_run_time=datetime.now(UTC)
        )
        self.scheduler.add_job(
            self.sweep,
            "interval",
            seconds=self.safety_interval.total_seconds(),
            id="safety_sweep",
            kwargs={"why": "safety"},
        )
        self.scheduler.add_job(self.findings, "cron", hour=2, minute=7, id="refresh_findings")
        self.scheduler.add_job(self.review_due, "interval", minutes=10, id="notify_review_due")
        wake.subscribe(self._on_write)
        self.receiver.start()
        self.sender.start()
        self.scheduler.start()

    def review_due(self) -> None:
        if self.is_leader:
            run_job(
                self.engine,
                self.settings,
                self.clock,
                "notify_review_due",
                self.holder,
                self.contexts,
            )

    def _on_write(self, instant: datetime) -> None:
        instant = instant if instant.tzinfo else instant.replace(tzinfo=UTC)
        if not (self.is_leader and self.scheduler.running):
            return
        if instant <= self.clock.now():
            self.sender.kick()  # not a deadline: a notice was written (or a retry asked for)
        else:
            self.rearm(instant)

    def _on_commit(self) -> None:
        """Another connection committed to the SQLite file (another server process, a CLI
        command): it may have written an earlier deadline, or a notice to send now. Both are
        read (no write lock), and the sender is woken only for a notice due."""
        if not (self.is_leader and self.scheduler.running):
            return
        try:
            with read_scope(self.engine) as session:
                instant, notice = next_wake(session), next_due(session)
        except Exception:
            log.exception("reading the next wake failed; the safety sweep stays armed")
            return
        if instant is not None:
            self.rearm(instant)
        if notice is not None and notice <= self.clock.now():
            self.sender.kick()

    def stop(self) -> None:
        wake.unsubscribe(self._on_write)
        self.receiver.stop()
        self.sender.stop()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        if self.is_leader:
            with session_scope(self.engine) as session:
                release(session, LEASE, self.holder, self.clock.now())
            self.is_leader = False

    def describe(self) -> dict[str, Any]:
        return {
            "holder": self.holder,
            "leader": self.is_leader,
            "next_wake": self.armed_at.isoformat() if self.armed_at else None,
            "running": self.scheduler.running,
        }
