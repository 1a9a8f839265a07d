"""The metrics' scheduled job."""

from __future__ import annotations

from monitor.core.db import refresh_statistics
from monitor.judging.flow import WriteFlow
from monitor.metrics.totals import reconcile


def reconcile_metrics(flow: WriteFlow) -> int:
    """Daily: rewrite the metric totals from the rows, so any drift lasts a day at most;
    returns how many had drifted. Also refreshes SQLite's planner statistics, which a day's
    writes age (`core.db.refresh_statistics`)."""
    drifted = reconcile(flow.session)
    refresh_statistics(flow.session.connection())
    return drifted
