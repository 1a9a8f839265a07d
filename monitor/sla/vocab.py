"""The words of the domain: event types, sources, roles, statuses."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, get_args

EventType = Literal[
    "reported",
    "acknowledged",
    "arrived",
    "user_notified",
    "resolved",
    "verified",
    "report_submitted",
    "severity_changed",
    "paused",
    "resumed",
    "reopened",
    "comment",
    "evidence_added",
    "correction",
]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)

TicketSource = Literal["monitoring", "user_report", "inspection", "other"]
TICKET_SOURCES: tuple[str, ...] = get_args(TicketSource)

EventSource = Literal["operator", "supervisor", "system", "import"]

Role = Literal["operator", "supervisor", "admin", "evaluator"]


class TargetStatus(StrEnum):
    """Where one target of a ticket stands against its deadline."""

    NOT_STARTED = "not_started"
    RUNNING = "running"
    AT_RISK = "at_risk"
    MET = "met"
    BREACHED = "breached"
    PAUSED = "paused"
    UNKNOWN_CALENDAR = "unknown_calendar"


# A clock that is still running can still change by itself (turn at risk, or breach).
CLOCK_RUNNING = (TargetStatus.RUNNING, TargetStatus.AT_RISK)


class TicketStatus(StrEnum):
    """A ticket's status, derived from its events: resolved needs `resolved`, closed `verified`."""

    OPEN = "open"
    RESOLVED = "resolved"
    CLOSED = "closed"


class Review(StrEnum):
    """A breach's review state; the latest review decides it."""

    PENDING = "pending"
    CONFIRMED = "confirmed"
    WAIVED = "waived"


class CorrectionState(StrEnum):
    """A correction that would clear a breach the supervision unit already reviewed waits for
    the unit's decision; until it is accepted the clock ignores it."""

    DISPUTED = "disputed"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


# Corrections the clock ignores while their latest decision is one of these.
HELD = (CorrectionState.DISPUTED, CorrectionState.REJECTED)

Decision = Literal["confirmed", "waived"]
DECISIONS: tuple[str, ...] = get_args(Decision)

# Event types a clock may start or stop on.
CLOCK_EVENTS = (
    "reported",
    "acknowledged",
    "arrived",
    "user_notified",
    "resolved",
    "verified",
    "report_submitted",
)
# A later `reopened` clears these, and the last one counts.
RESOLUTION_EVENTS = ("resolved", "verified")

EVENT_LABELS = {
    "reported": "报障",
    "acknowledged": "响应",
    "arrived": "到场",
    "user_notified": "反馈用户",
    "resolved": "解决",
    "verified": "用户确认恢复",
    "report_submitted": "提交故障分析报告",
    "severity_changed": "变更严重程度",
    "paused": "暂停",
    "resumed": "恢复计时",
    "reopened": "重新打开",
    "comment": "备注",
    "evidence_added": "补充佐证",
    "correction": "更正",
}

STATUS_LABELS = {
    "not_started": "未开始",
    "running": "进行中",
    "at_risk": "即将超时",
    "met": "达标",
    "breached": "超时",
    "paused": "暂停中",
    "unknown_calendar": "未知日历",
}

TICKET_STATUS_LABELS = {"open": "处理中", "resolved": "已解决", "closed": "已关闭"}

SOURCE_LABELS = {
    "monitoring": "监控发现",
    "user_report": "用户报障",
    "inspection": "巡检",
    "other": "其他",
}

ROLE_LABELS = {
    "operator": "运营单位",
    "supervisor": "监理单位",
    "admin": "管理员",
    "evaluator": "评估专家",
}

EVENT_SOURCE_LABELS = {
    "operator": "运营单位",
    "supervisor": "监理单位",
    "system": "系统",
    "import": "导入",
}

REVIEW_LABELS = {
    "pending": "待审核",
    "confirmed": "已确认",
    "waived": "已豁免",
    "cleared": "已撤销",
}

# One name per data-quality finding kind, for the API, the CLI, the pages and the reports.
FINDING_LABELS = {
    "overdue_open": "长期未解决",
    "no_evidence": "解决无佐证",
    "late_verification": "用户确认滞后",
    "late_entry": "补录/倒签",
    "impossible_order": "时间顺序矛盾",
    "unknown_calendar": "工作日历缺失",
    "calendar_missing": "次年日历未载入",
    "disputed_correction": "更正待监理确认",
}

SOURCE_LABELS = {
    "monitoring": "监控发现",
    "user_report": "用户报障",
    "inspection": "巡检发现",
    "other": "其他",
}
# Other words people write for a source, beside its label.
SOURCE_ALIASES = {"监控": "monitoring", "用户报告": "user_report", "巡检": "inspection"}

TICKET_STATUS_LABELS = {"open": "处理中", "resolved": "已解决", "closed": "已关闭"}

REVIEW_LABELS = {
    "pending": "待审核",
    "confirmed": "已确认",
    "waived": "已豁免",
    "cleared": "已撤销",
}


def code_of(value: str, labels: dict[str, str], aliases: dict[str, str] | None = None) -> str:
    """The code for a code, its Chinese label or an alias; anything else unchanged."""
    text = value.strip()
    if text in labels:
        return text
    for code, label in labels.items():
        if text == label:
            return code
    return (aliases or {}).get(text, value)
