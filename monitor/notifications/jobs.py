"""The notice jobs of the scheduler's table."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from monitor.core.clock import Clock
from monitor.core.settings import Settings
from monitor.judging.flow import WriteFlow
from monitor.notifications.sender import SendReport, send_due
from monitor.notifications.service import enqueue_review_due


def send_notifications(engine: Engine, settings: Settings, clock: Clock) -> SendReport:
    """Delivers the outbox; each send happens outside any transaction, so a slow robot
    holds no lock."""
    return send_due(engine, settings, clock)


def notify_review_due(flow: WriteFlow) -> int:
    """Tells the supervision unit of breaches left unreviewed too long."""
    made = enqueue_review_due(flow.session, flow.ctx, flow.ctx.now())
    flow.notices += made
    return made
