"""Every table, imported once so the metadata (and alembic) sees them all."""

from monitor.audit.models import AuditRecord
from monitor.calendars.models import CalendarLoad
from monitor.sla.models import PolicyVersion, TargetState
from monitor.tickets.models import Event, Ticket

__all__ = ["AuditRecord", "CalendarLoad", "Event", "PolicyVersion", "TargetState", "Ticket"]
