"""Every table, imported once so the metadata (and alembic) sees them all."""

from monitor.api.models import IdempotencyKey
from monitor.audit.models import AuditRecord
from monitor.auth.models import ApiToken, User
from monitor.breaches.models import Breach, BreachReview, CorrectionDecision, Finding
from monitor.calendars.models import CalendarLoad
from monitor.evidence.models import Evidence, EvidenceLink
from monitor.metrics.models import MetricTotal
from monitor.notifications.models import Delivery, DeliveryAttempt, Notice
from monitor.scheduler.models import JobRun, Lease
from monitor.sla.models import PolicyVersion, TargetState
from monitor.tickets.models import Event, Ticket
from monitor.web.models import LoginFailure, WebSession

__all__ = [
    "ApiToken",
    "AuditRecord",
    "Breach",
    "BreachReview",
    "CalendarLoad",
    "CorrectionDecision",
    "Delivery",
    "DeliveryAttempt",
    "Event",
    "Evidence",
    "EvidenceLink",
    "Finding",
    "IdempotencyKey",
    "JobRun",
    "Lease",
    "LoginFailure",
    "MetricTotal",
    "Notice",
    "PolicyVersion",
    "TargetState",
    "Ticket",
    "User",
    "WebSession",
]
