"""The metrics' scheduled job."""

from __future__ import annotations

from monitor.judging.flow import WriteFlow
from monitor.metrics.totals import reconcile


def reconcile_metrics(flow: WriteFlow) -> int:
    """Daily: rewrite the metric totals from the rows, so any drift lasts a day at most;
    returns how many had drifted."""
    return reconcile(flow.session)
