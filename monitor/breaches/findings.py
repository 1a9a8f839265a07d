"""Data-quality findings: what the evaluation found on paper, raised as soon as it happens."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo

from sqlmodel import Session, col, select

from monitor.breaches.models import Finding
from monitor.calendars.calendar import WorkCalendar
from monitor.core.timeutil import human_duration, show
from monitor.sla.models import TargetState
from monitor.sla.policy import Policy
from monitor.sla.timer import Effective, apply_corrections
from monitor.sla.vocab import EVENT_LABELS
from monitor.tickets.models import Event, Ticket

KINDS = {
    "overdue_open": "长期未解决",
    "no_evidence": "解决无佐证",
    "late_verification": "用户确认滞后",
    "late_entry": "补录/倒签",
    "impossible_order": "时间顺序矛盾",
    "unknown_calendar": "工作日历缺失",
    "calendar_missing": "次年日历未载入",
}


@dataclass(frozen=True)
class Thresholds:
    overdue_factor: float = 3.0
    late_entry: timedelta = timedelta(hours=24)
    late_verification: timedelta = timedelta(hours=72)


@dataclass(frozen=True)
class Found:
    kind: str
    key: str
    detail: str


# Pairs (earlier, later) whose order a real fault cannot reverse.
ORDER_RULES = (
    ("arrived", "resolved", "解决早于到场"),
    ("acknowledged", "resolved", "解决早于响应"),
    ("resolved", "verified", "用户确认早于解决"),
    ("resolved", "report_submitted", "故障分析报告早于解决"),
)


def _first(timeline: Sequence[Effective], kind: str) -> Effective | None:
    return next((x for x in timeline if x.type == kind), None)


def ticket_findings(
    ticket: Ticket,
    events: Sequence[Event],
    timeline: Sequence[Effective],
    states: Sequence[TargetState],
    policy: Policy,
    now: datetime,
    tz: tzinfo,
    limits: Thresholds,
) -> list[Found]:
    """Every finding the ticket shows at `now` (pure)."""
    found: list[Found] = []
    tid = ticket.id
    # "Open" means not resolved: measure against the clocks that run from the report.
    longest = max(
        (
            t.span if t.calendar == "24x7" else timedelta(days=t.workdays * 1.4)
            for t in policy.severities[ticket.current_severity].targets
            if t.start == "reported"
        ),
        default=timedelta(hours=24),
    )
    if ticket.status == "open" and now - ticket.reported_at > longest * limits.overdue_factor:
        found.append(
            Found(
                "overdue_open",
                f"overdue_open:{tid}",
                f"报障于 {show(ticket.reported_at, tz)}，已 "
                f"{human_duration(now - ticket.reported_at)} 仍未解决（超过该级别最长时限"
                f"的 {limits.overdue_factor:g} 倍）",
            )
        )
    resolved = [x for x in timeline if x.type == "resolved"]
    if resolved and ticket.status in ("resolved", "closed"):
        last = resolved[-1]
        after = [x for x in timeline if (x.at, x.event.seq) >= (last.at, last.event.seq)]
        by_seq = {e.seq: e for e in events}
        if not any(by_seq[x.event.seq].evidence for x in after):
            found.append(
                Found(
                    "no_evidence",
                    f"no_evidence:{tid}",
                    f"解决(resolved) 事件 {last.event.label} 于 {show(last.at, tz)}，"
                    "没有任何解决佐证材料",
                )
            )
        verified = [x for x in timeline if x.type == "verified" and x.at >= last.at]
        if verified and verified[0].at - last.at > limits.late_verification:
            found.append(
                Found(
                    "late_verification",
                    f"late_verification:{tid}",
                    f"解决于 {show(last.at, tz)}，用户确认于 "
                    f"{show(verified[0].at, tz)}，相隔 "
                    f"{human_duration(verified[0].at - last.at)}",
                )
            )
    for e in events:
        if e.type == "correction" or e.source == "import":
            continue
        lag = e.recorded_at - e.occurred_at
        if lag > limits.late_entry:
            found.append(
                Found(
                    "late_entry",
                    f"late_entry:{tid}:{e.seq}",
                    f"事件 #{e.seq} {EVENT_LABELS.get(e.type, e.type)}({e.type}) 发生于 "
                    f"{show(e.occurred_at, tz)}，{show(e.recorded_at, tz)} 才登记，"
                    f"迟 {human_duration(lag)}",
                )
            )
    for earlier, later, words in ORDER_RULES:
        a, b = _first(timeline, earlier), _first(timeline, later)
        if a is not None and b is not None and b.at < a.at:
            found.append(
                Found(
                    "impossible_order",
                    f"impossible_order:{tid}:{earlier}:{later}",
                    f"{words}：{EVENT_LABELS[later]}({later}) {show(b.at, tz)} 早于 "
                    f"{EVENT_LABELS[earlier]}({earlier}) {show(a.at, tz)}",
                )
            )
    open_pause = False
    for x in timeline:
        if x.type == "paused":
            if open_pause:
                found.append(
                    Found(
                        "impossible_order",
                        f"impossible_order:{tid}:pause:{x.event.seq}",
                        f"事件 {x.event.label} 在已暂停时再次暂停",
                    )
                )
            open_pause = True
        elif x.type == "resumed":
            if not open_pause:
                found.append(
                    Found(
                        "impossible_order",
                        f"impossible_order:{tid}:resume:{x.event.seq}",
                        f"事件 {x.event.label} 恢复计时，但此前没有暂停",
                    )
                )
            open_pause = False
    for s in states:
        if s.status == "unknown_calendar":
            found.append(
                Found(
                    "unknown_calendar",
                    f"unknown_calendar:{tid}:{s.target}",
                    f"目标 {s.name}({s.target}) 的截止日需要 {s.unknown_year} 年的工作日"
                    "安排，该年日历尚未载入",
                )
            )
    return found


def calendar_findings(calendar: WorkCalendar, today: date) -> list[Found]:
    """From 15 November, next year's official arrangement should be loaded."""
    if (today.month, today.day) >= (11, 15) and not calendar.knows(today.year + 1):
        year = today.year + 1
        return [
            Found(
                "calendar_missing",
                f"calendar_missing:{year}",
                f"{year} 年的国务院节假日安排尚未载入；跨入 {year} 年的工作日时限将无法计算。"
                f"请用 `sla-monitor calendar load` 载入",
            )
        ]
    return []


def sync_findings(
    session: Session,
    found: Sequence[Found],
    now: datetime,
    *,
    ticket: Ticket | None = None,
    kinds: Sequence[str] | None = None,
) -> int:
    """Open what is found and not yet open; close open ones (of this scope) no longer found."""
    query = select(Finding).where(col(Finding.closed_at).is_(None))
    if ticket is not None:
        query = query.where(Finding.ticket_id == ticket.id)
    if kinds is not None:
        query = query.where(col(Finding.kind).in_(kinds))
    open_now = {f.key: f for f in session.exec(query).all()}
    wanted = {f.key: f for f in found}
    changed = 0
    for key, finding in open_now.items():
        if key not in wanted:
            finding.closed_at = now
            session.add(finding)
            changed += 1
    for key, f in wanted.items():
        if key not in open_now:
            session.add(
                Finding(
                    kind=f.kind,
                    key=key,
                    ticket_id=ticket.id if ticket else None,
                    pool=ticket.pool if ticket else None,
                    detail=f.detail,
                    opened_at=now,
                )
            )
            changed += 1
    session.flush()
    return changed


def list_findings(
    session: Session, *, open_only: bool = False, pool: str | None = None
) -> list[Finding]:
    query = select(Finding)
    if open_only:
        query = query.where(col(Finding.closed_at).is_(None))
    if pool is not None:
        query = query.where(Finding.pool == pool)
    return list(session.exec(query.order_by(col(Finding.id))).all())


def refresh_ticket_findings(
    session: Session,
    ticket: Ticket,
    events: Sequence[Event],
    states: Sequence[TargetState],
    policy: Policy,
    now: datetime,
    tz: tzinfo,
    limits: Thresholds,
) -> int:
    from monitor.sla.service import timeline_of

    timeline = apply_corrections(timeline_of(events))
    found = ticket_findings(ticket, events, timeline, states, policy, now, tz, limits)
    return sync_findings(session, found, now, ticket=ticket)
