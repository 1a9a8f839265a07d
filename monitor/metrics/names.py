"""Every metric the product exports: one place, so dashboards and rules can be checked
against it. Base units (seconds), `_total` on counters, no label carrying a ticket's identity."""

from __future__ import annotations

PREFIX = "slamon_"

# name -> (type, help, labels)
METRICS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "slamon_tickets_open": ("gauge", "Tickets not yet resolved.", ("pool", "severity")),
    "slamon_sla_targets": (
        "gauge",
        "SLA targets by their current status.",
        ("pool", "severity", "target", "status"),
    ),
    "slamon_sla_breaches_total": (
        "counter",
        "Breaches recorded, by the supervisor's review state (cleared: a correction "
        "later showed the target met).",
        ("pool", "severity", "target", "review"),
    ),
    "slamon_indicator_score": (
        "gauge",
        "Year-end indicator score from the stored breaches.",
        ("indicator", "year"),
    ),
    "slamon_indicator_occurrences": (
        "gauge",
        "Occurrences that cost points, per indicator and year.",
        ("indicator", "year"),
    ),
    "slamon_indicator_pending_breaches": (
        "gauge",
        "Counted breaches still awaiting review (the score is provisional while > 0).",
        ("indicator", "year"),
    ),
    "slamon_findings_open": ("gauge", "Open data-quality findings.", ("kind",)),
    "slamon_sweep_last_success_timestamp_seconds": (
        "gauge",
        "When the breach sweep last completed, Unix time.",
        (),
    ),
    "slamon_scheduler_leader": (
        "gauge",
        "1 for the process holding the scheduler lease, 0 when nobody holds it.",
        ("holder",),
    ),
    "slamon_calendar_last_known_year": (
        "gauge",
        "The last year the working-day calendar knows.",
        (),
    ),
    "slamon_notifications_total": (
        "counter",
        "Attempts to deliver a notice, by kind, channel and result (sent or error).",
        ("kind", "channel", "result"),
    ),
    "slamon_notifications_outbox": (
        "gauge",
        "Notice deliveries not yet sent: pending (being tried) or failed (given up, "
        "`sla-monitor notifications retry` sends them again).",
        ("channel", "status"),
    ),
    "slamon_notifications_oldest_undelivered_age_seconds": (
        "gauge",
        "How long the oldest notice delivery not yet sent has waited (0 when none).",
        (),
    ),
    "slamon_arrival_duration_seconds": (
        "histogram",
        "Report to engineer on site, for tickets that arrived.",
        ("pool", "severity"),
    ),
    "slamon_response_duration_seconds": (
        "histogram",
        "Report to response, for tickets that were acknowledged.",
        ("pool", "severity"),
    ),
    "slamon_resolution_duration_seconds": (
        "histogram",
        "Report to resolution, for resolved tickets.",
        ("pool", "severity"),
    ),
}

# Contract-sized buckets: 5 minutes to 72 hours.
DURATION_BUCKETS = (300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 172800, 259200)

# Each histogram is fed by the SLA target of this id.
HISTOGRAM_TARGETS = {
    "slamon_arrival_duration_seconds": "arrival",
    "slamon_response_duration_seconds": "response",
    "slamon_resolution_duration_seconds": "resolution",
}


def exported_series_names() -> set[str]:
    """Every series name a query may use (histograms add _bucket, _sum, _count)."""
    names = set()
    for name, (kind, _, _) in METRICS.items():
        if kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
        else:
            names.add(name)
    return names
