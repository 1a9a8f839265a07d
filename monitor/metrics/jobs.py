"""The metrics' scheduled job."""

from __future__ import annotations

from monitor.core.db import refresh_statistics
from monitor.judging.flow import WriteFlow
from monitor.metrics.totals import Drift


def reconcile_metrics(flow: WriteFlow, found: Drift) -> int:
    """Daily: correct the metric totals to what the rows said in a snapshot read just before
    (`totals.snapshot_drift`, the job's `reads_first`), so any drift lasts a day at most;
    returns how many had drifted. Also refreshes SQLite's planner statistics, which a day's
    writes age (`core.db.refresh_statistics`)."""
    found.changes.apply(flow.session)
    refresh_statistics(flow.session.connection())
    return found.wrong
