"""Data-quality findings: what the evaluation found on paper, raised as soon as it happens."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from monitor.breaches.models import CorrectionDecision, Finding
from monitor.calendars.calendar import WorkCalendar
from monitor.core.batch import expire_loaded, insert_rows, update_rows
from monitor.core.settings import Settings
from monitor.core.timeutil import human_duration, show
from monitor.sla.models import JudgedState
from monitor.sla.policy import Policy
from monitor.sla.timer import Effective, Seek
from monitor.sla.vocab import EVENT_LABELS, FINDING_LABELS, TargetStatus, TicketStatus
from monitor.tickets.models import StoredEvent, Ticket

KINDS = FINDING_LABELS


@dataclass(frozen=True)
class Thresholds:
    overdue_factor: float = 3.0
    late_entry: timedelta = timedelta(hours=24)
    late_verification: timedelta = timedelta(hours=72)

    @classmethod
    def of(cls, settings: Settings) -> Thresholds:
        return cls(
            overdue_factor=settings.finding_overdue_factor,
            late_entry=timedelta(hours=settings.finding_late_entry_hours),
            late_verification=timedelta(hours=settings.finding_late_verification_hours),
        )


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


@dataclass(frozen=True)
class Facts:
    """Everything the finding rules look at for one ticket."""

    ticket: Ticket
    events: Sequence[StoredEvent]
    timeline: Sequence[Effective]
    states: Sequence[JudgedState]
    policy: Policy
    now: datetime
    tz: tzinfo
    limits: Thresholds
    disputed: tuple[CorrectionDecision, ...] = ()


def overdue_open(f: Facts) -> list[Found]:
    """Open three times longer than the longest clock that runs from the report."""
    ticket = f.ticket
    longest = max(
        (
            t.span if t.calendar == "24x7" else timedelta(days=t.workdays * 1.4)
            for t in f.policy.severities[ticket.current_severity].targets
            if t.start == "reported"
        ),
        default=timedelta(hours=24),
    )
    age = f.now - ticket.reported_at
    if ticket.status != TicketStatus.OPEN or age <= longest * f.limits.overdue_factor:
        return []
    return [
        Found(
            "overdue_open",
            f"overdue_open:{ticket.id}",
            f"报障于 {show(ticket.reported_at, f.tz)}，已 {human_duration(age)} 仍未解决"
            f"（超过该级别最长时限的 {f.limits.overdue_factor:g} 倍）",
        )
    ]


def _last_resolution(f: Facts) -> Effective | None:
    resolved = [x for x in f.timeline if x.type == "resolved"]
    if not resolved or f.ticket.status == TicketStatus.OPEN:
        return None
    return resolved[-1]


def no_evidence(f: Facts) -> list[Found]:
    """Resolved with no evidence on the resolution or anything after it."""
    last = _last_resolution(f)
    if last is None:
        return []
    after = [x for x in f.timeline if (x.at, x.event.seq) >= (last.at, last.event.seq)]
    by_seq = {e.seq: e for e in f.events}
    if any(by_seq[x.event.seq].evidence for x in after):
        return []
    return [
        Found(
            "no_evidence",
            f"no_evidence:{f.ticket.id}",
            f"解决(resolved) 事件 {last.event.label} 于 {show(last.at, f.tz)}，"
            "没有任何解决佐证材料",
        )
    ]


def seeks(timeline: Sequence[Effective]) -> list[Seek]:
    """What the rules below turn on besides a partial timeline as `sla.timer.seeks` takes it:
    the first verification at or after the last resolution, and the first event with
    evidence after it. (Late entries are each event's own: see `sync_findings`' `kept`.)"""
    resolved = [x for x in timeline if x.type == "resolved"]
    if not resolved:
        return []
    last = resolved[-1]
    return [Seek("verified", last.at), Seek(None, last.at, last.event.seq)]


def late_verification(f: Facts) -> list[Found]:
    """The user confirmed the restoration long after it was claimed."""
    last = _last_resolution(f)
    if last is None:
        return []
    verified = [x for x in f.timeline if x.type == "verified" and x.at >= last.at]
    if not verified or verified[0].at - last.at <= f.limits.late_verification:
        return []
    return [
        Found(
            "late_verification",
            f"late_verification:{f.ticket.id}",
            f"解决于 {show(last.at, f.tz)}，用户确认于 {show(verified[0].at, f.tz)}，"
            f"相隔 {human_duration(verified[0].at - last.at)}",
        )
    ]


def entry_lag(event: StoredEvent, limits: Thresholds) -> timedelta | None:
    """How late an event was entered, if later than allowed; imports and corrections are
    exempt (they are entered after the fact by nature)."""
    if event.type == "correction" or event.source == "import":
        return None
    lag = event.recorded_at - event.occurred_at
    return lag if lag > limits.late_entry else None


def late_entries(f: Facts) -> list[Found]:
    """Events entered long after they happened (back-dating)."""
    found = []
    for e in f.events:
        lag = entry_lag(e, f.limits)
        if lag is None:
            continue
        found.append(
            Found(
                "late_entry",
                f"late_entry:{f.ticket.id}:{e.seq}",
                f"事件 #{e.seq} {EVENT_LABELS.get(e.type, e.type)}({e.type}) 发生于 "
                f"{show(e.occurred_at, f.tz)}，{show(e.recorded_at, f.tz)} 才登记，"
                f"迟 {human_duration(lag)}",
            )
        )
    return found


def impossible_order(f: Facts) -> list[Found]:
    """Pairs of events in an order a real fault cannot have."""
    found = []
    for earlier, later, words in ORDER_RULES:
        a, b = _first(f.timeline, earlier), _first(f.timeline, later)
        if a is not None and b is not None and b.at < a.at:
            found.append(
                Found(
                    "impossible_order",
                    f"impossible_order:{f.ticket.id}:{earlier}:{later}",
                    f"{words}：{EVENT_LABELS[later]}({later}) {show(b.at, f.tz)} 早于 "
                    f"{EVENT_LABELS[earlier]}({earlier}) {show(a.at, f.tz)}",
                )
            )
    return found


def pause_order(f: Facts) -> list[Found]:
    """A pause while paused, or a resume with no pause."""
    found = []
    open_pause = False
    for x in f.timeline:
        if x.type == "paused" and open_pause:
            found.append(
                Found(
                    "impossible_order",
                    f"impossible_order:{f.ticket.id}:pause:{x.event.seq}",
                    f"事件 {x.event.label} 在已暂停时再次暂停",
                )
            )
        elif x.type == "resumed" and not open_pause:
            found.append(
                Found(
                    "impossible_order",
                    f"impossible_order:{f.ticket.id}:resume:{x.event.seq}",
                    f"事件 {x.event.label} 恢复计时，但此前没有暂停",
                )
            )
        if x.type in ("paused", "resumed"):
            open_pause = x.type == "paused"
    return found


def unknown_calendar(f: Facts) -> list[Found]:
    """A working-day deadline that needs a year the calendar does not know."""
    return [
        Found(
            "unknown_calendar",
            f"unknown_calendar:{f.ticket.id}:{s.target}",
            f"目标 {s.name}({s.target}) 的截止日需要 {s.unknown_year} 年的工作日安排，"
            "该年日历尚未载入",
        )
        for s in f.states
        if s.status == TargetStatus.UNKNOWN_CALENDAR
    ]


def disputed_correction(f: Facts) -> list[Found]:
    """A correction that would overturn a reviewed breach, waiting for the supervision unit."""
    return [
        Found(
            "disputed_correction",
            f"disputed_correction:{f.ticket.id}:{d.correction_seq}",
            f"更正事件 #{d.correction_seq} {d.reason}；在监理单位确认前不计入时限计算",
        )
        for d in f.disputed
    ]


TICKET_RULES = (
    overdue_open,
    no_evidence,
    late_verification,
    late_entries,
    impossible_order,
    pause_order,
    unknown_calendar,
    disputed_correction,
)


def ticket_findings(facts: Facts) -> list[Found]:
    """Every finding the ticket shows at `facts.now` (pure)."""
    return [found for rule in TICKET_RULES for found in rule(facts)]


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
    kept: Callable[[str], bool] | None = None,
) -> int:
    """Open what is found and not yet open; close open ones (of this scope) no longer found,
    but those whose key `kept` holds (the rules did not see their events: a judgement by a
    partial timeline). (A new ticket's are opened with its other rows,
    `judging.new_tickets`.) Plain rows and Core statements, which run at once: a later read
    in this transaction finds what they wrote (loading the open findings as ORM objects and
    flushing their close cost an event's write more than the rules themselves)."""
    open_now = _open_findings(session, ticket, kinds)
    wanted = distinct(found)
    # In id order, as the ORM's flush wrote them: two writers lock the rows in one order.
    closing = [
        {"closed_at": now, "id": i}
        for i in sorted(
            i
            for key, i in open_now.items()
            if key not in wanted and (kept is None or not kept(key))
        )
    ]
    if closing:
        expire_loaded(session, Finding, [c["id"] for c in closing])
        update_rows(session, _FINDINGS, closing, key=("id",))
    ticket_id, pool = (ticket.id, ticket.pool) if ticket else (None, None)
    opened = [
        opened_row(f, ticket_id, pool, now) for key, f in wanted.items() if key not in open_now
    ]
    if opened:  # one statement, no objects
        insert_rows(session, _FINDINGS, opened)
    return len(closing) + len(opened)


def distinct(found: Sequence[Found]) -> dict[str, Found]:
    """What the rules found, by key (the last of a key counts)."""
    return {f.key: f for f in found}


def opened_row(f: Found, ticket_id: int | None, pool: str | None, now: datetime) -> dict[str, Any]:
    """The row of a finding opened now (of a ticket, or of no ticket)."""
    return {
        "kind": f.kind,
        "key": f.key,
        "ticket_id": ticket_id,
        "pool": pool,
        "detail": f.detail,
        "opened_at": now,
        "closed_at": None,
    }


def _open_findings(
    session: Session, ticket: Ticket | None, kinds: Sequence[str] | None
) -> dict[str, int]:
    """The ids of the open findings of this scope, by key (Core, on the session's
    connection: nothing it holds unflushed is a finding)."""
    if ticket is not None and kinds is None:  # every write of an existing ticket
        rows = session.connection().execute(_OPEN_OF_TICKET, {"ticket": ticket.id}).all()
        return {key: i for key, i in rows}
    query = sa.select(_FINDINGS.c.key, _FINDINGS.c.id).where(_FINDINGS.c.closed_at.is_(None))
    if ticket is not None:
        query = query.where(_FINDINGS.c.ticket_id == ticket.id)
    if kinds is not None:
        query = query.where(_FINDINGS.c.kind.in_(kinds))
    return {key: i for key, i in session.connection().execute(query).all()}


_FINDINGS: sa.Table = Finding.__table__  # type: ignore[attr-defined]
# Built once: building its expressions cost ~30 µs, a large part of an event's findings.
_OPEN_OF_TICKET = sa.select(_FINDINGS.c.key, _FINDINGS.c.id).where(
    _FINDINGS.c.closed_at.is_(None), _FINDINGS.c.ticket_id == sa.bindparam("ticket")
)


def list_findings(
    session: Session,
    *,
    open_only: bool = False,
    pool: str | None = None,
    kind: str | None = None,
    newest_first: bool = False,
    offset: int = 0,
    limit: int | None = None,
) -> list[Finding]:
    """Findings, oldest first (or the newest opened first); `offset` and `limit` take one page
    of them in the database (a history holds a hundred thousand: the 数据质量 page read
    164,000 to show 500, 3.9 s)."""
    query = _findings_where(select(Finding), open_only=open_only, pool=pool, kind=kind)
    if newest_first:
        query = query.order_by(col(Finding.opened_at).desc(), col(Finding.id))
    else:
        query = query.order_by(col(Finding.id))
    query = query.offset(offset)
    if limit is not None:
        query = query.limit(limit)
    return list(session.exec(query).all())


def count_findings(
    session: Session, *, open_only: bool = False, pool: str | None = None
) -> dict[str, int]:
    """How many findings of each kind `list_findings` would list, counted by the database."""
    query = select(Finding.kind, sa.func.count()).group_by(Finding.kind)
    query = _findings_where(query, open_only=open_only, pool=pool, kind=None)
    return {kind: count for kind, count in session.exec(query).all()}


def _findings_where(query: Any, *, open_only: bool, pool: str | None, kind: str | None) -> Any:
    if open_only:
        query = query.where(col(Finding.closed_at).is_(None))
    if pool is not None:
        query = query.where(Finding.pool == pool)
    if kind is not None:
        query = query.where(Finding.kind == kind)
    return query
