"""The SLA clock: policy + calendar + a ticket's events + now -> each target's state, explained.

Pure: no database, no system time. Every rule of the specification's SLA semantics lives here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta, tzinfo

from monitor.calendars.calendar import Count as WorkdayCount
from monitor.calendars.calendar import WorkCalendar
from monitor.core.errors import UnknownCalendarYear
from monitor.core.timeutil import human_duration, show
from monitor.sla.policy import Policy, Target
from monitor.sla.vocab import (
    CLOCK_RUNNING,
    EVENT_LABELS,
    RESOLUTION_EVENTS,
    TargetStatus,
    TicketStatus,
)

END_OF_DAY = time(23, 59, 59, 999999)
AFTER_DEADLINE = timedelta(milliseconds=1)


@dataclass(frozen=True)
class TimelineEvent:
    """An event as the clock sees it; `ref` is how explanations name it (e.g. #3)."""

    seq: int
    type: str
    at: datetime
    ref: str = ""
    severity: str | None = None
    corrects: int | None = None  # seq of the corrected event, for corrections
    reason: str | None = None

    @property
    def label(self) -> str:
        return self.ref or f"#{self.seq}"


@dataclass(frozen=True)
class Effective:
    """A non-correction event at its time after corrections, and the corrections applied."""

    event: TimelineEvent
    at: datetime
    corrections: tuple[TimelineEvent, ...]
    # The event's type, kept beside it: the rules read it a hundred times a ticket, and as a
    # property each read cost six times a field's (8 µs a ticket).
    type: str

    @property
    def claimed_at(self) -> datetime:
        return self.event.at


@dataclass(frozen=True)
class TargetResult:
    target: str
    name: str
    status: TargetStatus
    start: datetime | None
    deadline: datetime | None
    stop: datetime | None
    elapsed: timedelta | None
    overrun: timedelta | None
    risk_at: datetime | None  # when it turns at risk, if it is still running
    paused: timedelta
    explain: str
    calendar: str
    duration: str
    start_seq: int | None = None
    stop_seq: int | None = None
    unknown_year: int | None = None


@dataclass(frozen=True)
class Judgement:
    severity: str
    status: TicketStatus
    targets: list[TargetResult] = field(default_factory=list)


def apply_corrections(events: Sequence[TimelineEvent]) -> list[Effective]:
    """The timeline with each event at its latest corrected time, ordered by that time."""
    by_seq = {e.seq: e for e in events}
    corrections: dict[int, list[TimelineEvent]] = {}
    for e in sorted(events, key=lambda e: e.seq):
        if e.type == "correction" and e.corrects is not None and e.corrects in by_seq:
            corrections.setdefault(e.corrects, []).append(e)
    out = []
    for e in events:
        if e.type == "correction":
            continue
        applied = tuple(corrections.get(e.seq, ()))
        out.append(Effective(e, applied[-1].at if applied else e.at, applied, e.type))
    out.sort(key=lambda x: (x.at, x.event.seq))
    return out


def current_severity(
    reported_severity: str, timeline: Sequence[Effective]
) -> tuple[str, list[Effective]]:
    changes = [x for x in timeline if x.type == "severity_changed" and x.event.severity]
    severity = changes[-1].event.severity if changes else reported_severity
    assert severity is not None
    return severity, changes


def _last_unreopened(
    timeline: Sequence[Effective], kind: str, after: datetime | None = None
) -> tuple[Effective | None, Effective | None]:
    """The last `kind` event (at or after `after`), unless a later `reopened` cleared it."""
    found = [x for x in timeline if x.type == kind and (after is None or x.at >= after)]
    if not found:
        return None, None
    last = found[-1]
    reopen = next(
        (
            x
            for x in timeline
            if x.type == "reopened" and (x.at, x.event.seq) > (last.at, last.event.seq)
        ),
        None,
    )
    return (None, reopen) if reopen else (last, None)


def _anchor(
    timeline: Sequence[Effective], kind: str, after: datetime | None = None
) -> tuple[Effective | None, Effective | None]:
    if kind in RESOLUTION_EVENTS:
        return _last_unreopened(timeline, kind, after)
    found = next((x for x in timeline if x.type == kind and (after is None or x.at >= after)), None)
    return found, None


def pauses_between(
    timeline: Sequence[Effective], start: datetime, end: datetime
) -> list[tuple[datetime, datetime | None]]:
    """Pause intervals clipped to [start, end]; an interval still open ends with None."""
    intervals: list[tuple[datetime, datetime | None]] = []
    opened: datetime | None = None
    for x in timeline:
        if x.type == "paused" and opened is None:
            opened = x.at
        elif x.type == "resumed" and opened is not None:
            intervals.append((opened, x.at))
            opened = None
    if opened is not None:
        intervals.append((opened, None))
    clipped: list[tuple[datetime, datetime | None]] = []
    for begin, finish in intervals:
        b = max(begin, start)
        if b >= end:
            continue
        if finish is None:
            clipped.append((b, None))
        elif finish > b:
            clipped.append((b, min(finish, end)))
    return clipped


def after_active(
    start: datetime, active: timedelta, pauses: Sequence[tuple[datetime, datetime | None]]
) -> datetime | None:
    """The instant at which `active` running time has passed since start; None while paused."""
    t, remaining = start, active
    for begin, finish in pauses:
        if t + remaining <= begin:
            return t + remaining
        remaining -= begin - t
        if finish is None:
            return None
        t = finish
    return t + remaining


def paused_total(pauses: Sequence[tuple[datetime, datetime | None]], end: datetime) -> timedelta:
    return sum(((finish or end) - begin for begin, finish in pauses), timedelta())


def _event_words(x: Effective, tz: tzinfo) -> str:
    words = f"{EVENT_LABELS.get(x.type, x.type)}({x.type}) 事件 {x.event.label}，{show(x.at, tz)}"
    if x.corrections:
        last = x.corrections[-1]
        words += (
            f"（原登记为 {show(x.claimed_at, tz)}，经更正事件 {last.label} 改为此时间，"
            f"原因：{last.reason or '未说明'}"
        )
        if len(x.corrections) > 1:
            words += f"；共 {len(x.corrections)} 次更正，以最后一次为准"
        words += "）"
    return words


@dataclass(frozen=True)
class Measure:
    """What the rules decide for one target, before any words are written about it."""

    status: TargetStatus
    start_ev: Effective | None = None
    start_reopen: Effective | None = None
    stop_ev: Effective | None = None
    stop_reopen: Effective | None = None
    count: WorkdayCount | None = None
    unknown_year: int | None = None
    allowed: timedelta | None = None
    pauses: tuple[tuple[datetime, datetime | None], ...] = ()
    ignored_pause: timedelta = timedelta()
    deadline: datetime | None = None
    paused: timedelta = timedelta()
    elapsed: timedelta | None = None
    risk_at: datetime | None = None

    @property
    def start(self) -> datetime | None:
        return self.start_ev.at if self.start_ev else None

    @property
    def stop(self) -> datetime | None:
        return self.stop_ev.at if self.stop_ev else None

    def overrun(self, now: datetime) -> timedelta | None:
        if self.status != TargetStatus.BREACHED or self.deadline is None:
            return None
        return (self.stop or now) - self.deadline


def measure_target(
    target: Target, timeline: Sequence[Effective], calendar: WorkCalendar, now: datetime, tz: tzinfo
) -> Measure:
    """The SLA rule for one target (semantics 2-6): start, deadline, stop, pauses, status."""
    start_ev, start_reopen = _anchor(timeline, target.start)
    if start_ev is None:
        return Measure(TargetStatus.NOT_STARTED, start_reopen=start_reopen)
    start = start_ev.at
    stop_ev, stop_reopen = _anchor(timeline, target.stop, after=start)
    stop = stop_ev.at if stop_ev else None
    end = stop if stop is not None else max(now, start)

    count = None
    if target.calendar == "24x7":
        base_deadline = start + target.span
    else:
        try:
            count = calendar.count_workdays_after(start.astimezone(tz).date(), target.workdays)
        except UnknownCalendarYear as exc:
            return Measure(
                TargetStatus.UNKNOWN_CALENDAR,
                start_ev=start_ev,
                start_reopen=start_reopen,
                stop_ev=stop_ev,
                stop_reopen=stop_reopen,
                unknown_year=exc.year,
            )
        base_deadline = datetime.combine(count.deadline_day, END_OF_DAY, tz).astimezone(
            start.tzinfo
        )
    allowed = base_deadline - start
    in_window = pauses_between(timeline, start, end)
    pauses = in_window if target.pausable else []
    ignored = paused_total(in_window, end) if not target.pausable else timedelta()
    deadline = after_active(start, allowed, pauses)
    paused_for = paused_total(pauses, end)
    elapsed = (end - start) - paused_for
    risk_at = None
    if deadline is None:
        status = TargetStatus.PAUSED  # with the clock frozen: no deadline until it resumes
    elif stop is not None:
        status = TargetStatus.MET if stop <= deadline else TargetStatus.BREACHED
    elif now > deadline:
        status = TargetStatus.BREACHED
    else:
        status = (
            TargetStatus.AT_RISK if elapsed >= allowed * target.warn_at else TargetStatus.RUNNING
        )
        risk_at = after_active(start, allowed * target.warn_at, pauses)
    # Built once (a frozen dataclass built and then replaced cost 2 % of an import).
    return Measure(
        status,
        start_ev=start_ev,
        start_reopen=start_reopen,
        stop_ev=stop_ev,
        stop_reopen=stop_reopen,
        count=count,
        allowed=allowed,
        deadline=deadline,
        risk_at=risk_at,
        pauses=tuple(pauses),
        ignored_pause=ignored,
        paused=paused_for,
        elapsed=elapsed,
    )


def explain_target(
    target: Target, m: Measure, policy: Policy, severity: str, now: datetime, tz: tzinfo
) -> str:
    """The measure in words a supervisor can attach to a dispute (semantics 10)."""
    sev_name = policy.severities[severity].name
    calendar_words = "7×24 小时连续计时" if target.calendar == "24x7" else "按国家法定工作日计"
    start_label, stop_label = EVENT_LABELS[target.start], EVENT_LABELS[target.stop]
    lines = [
        f"目标「{target.name}」({target.id})：依据策略 {policy.version}"
        f"（{policy.effective_from.isoformat()} 起生效），{sev_name}({severity})，"
        f"自{start_label}({target.start})至{stop_label}"
        f"({target.stop})，时限 {target.duration}，{calendar_words}。"
    ]
    if m.start_ev is None:
        if m.start_reopen is not None:
            lines.append(
                f"起点已被{_event_words(m.start_reopen, tz)}清除，等待新的"
                f"{start_label}({target.start})。"
            )
        else:
            lines.append(f"尚无{start_label}({target.start})事件，计时未开始。")
        return "\n".join(lines)
    lines.append(f"起点：{_event_words(m.start_ev, tz)}。")
    if m.status == TargetStatus.UNKNOWN_CALENDAR:
        lines.append(
            f"{target.workdays} 个工作日的截止日需要 {m.unknown_year} 年的工作日安排，"
            f"该年日历尚未载入，不作推测；请载入 {m.unknown_year} 年国务院节假日安排后重新计算。"
        )
        return "\n".join(lines)
    if m.count is not None:
        lines.append(_workday_words(m.count, target.workdays, m.start_ev.at.astimezone(tz).date()))
    if m.ignored_pause:
        lines.append(
            f"该目标不可暂停：期间的暂停（共 {human_duration(m.ignored_pause)}）照常计时。"
        )
    if m.pauses:
        lines.append(
            f"暂停 {len(m.pauses)} 次，共 {human_duration(m.paused)} 不计时，截止时间相应顺延。"
        )
    if m.stop_ev is not None:
        lines.append(f"终点：{_event_words(m.stop_ev, tz)}。")
    elif m.stop_reopen is not None:
        lines.append(
            f"此前的{stop_label}已被{_event_words(m.stop_reopen, tz)}清除，"
            f"以最后一次{stop_label}为准；目前尚未停止。"
        )
    else:
        lines.append(f"尚无{stop_label}({target.stop})事件，截至 {show(now, tz)} 仍在计时。")
    lines.append(_verdict(target, m, now, tz))
    return "\n".join(lines)


def _workday_words(count: WorkdayCount, n: int, start_day: date) -> str:
    counted = "、".join(d.describe() for d in count.counted)
    words = f"{n} 个工作日：自起点本地日期 {start_day.isoformat()} 的次日起逐日计数，计入 {counted}"
    if count.skipped:
        words += f"；跳过 {'、'.join(d.describe() for d in count.skipped)}"
    sources = sorted({d.source for d in (*count.counted, *count.skipped)})
    return (
        f"{words}；截止为第 {n} 个工作日 {count.deadline_day.isoformat()} 的 "
        f"23:59:59.999999（本地时间）。日历来源：{'、'.join(sources)}。"
    )


def _verdict(target: Target, m: Measure, now: datetime, tz: tzinfo) -> str:
    assert m.elapsed is not None and m.allowed is not None
    if m.deadline is None:
        return (
            f"当前暂停中，剩余时限 {human_duration(m.allowed - m.elapsed)}，"
            "恢复计时后重新计算截止时间。"
        )
    words = f"截止时间：{show(m.deadline, tz)}。\n"
    overrun = m.overrun(now)
    if m.status == TargetStatus.MET:
        assert m.stop is not None
        return words + (
            f"结果：按时完成（met），用时 {human_duration(m.elapsed)}，"
            f"距截止尚余 {human_duration(m.deadline - m.stop)}。"
        )
    if m.status == TargetStatus.BREACHED and m.stop is not None:
        return words + f"结果：超时（breached），超出 {human_duration(overrun or timedelta())}。"
    if m.status == TargetStatus.BREACHED:
        return words + (
            f"结果：已超时（breached），截至 {show(now, tz)} 超出 "
            f"{human_duration(overrun or timedelta())}。"
        )
    if m.status == TargetStatus.AT_RISK:
        return words + (
            f"结果：即将超时（at_risk），已用 {human_duration(m.elapsed)}，"
            f"达到时限的 {target.warn_at:.0%} 预警线。"
        )
    return words + f"结果：计时中（running），已用 {human_duration(m.elapsed)}。"


def judge_target(
    target: Target,
    timeline: Sequence[Effective],
    policy: Policy,
    severity: str,
    calendar: WorkCalendar,
    now: datetime,
    tz: tzinfo,
) -> TargetResult:
    """Measure the target, then explain it."""
    m = measure_target(target, timeline, calendar, now, tz)
    return TargetResult(
        target=target.id,
        name=target.name,
        status=m.status,
        start=m.start,
        deadline=m.deadline,
        stop=m.stop,
        elapsed=m.elapsed,
        overrun=m.overrun(now),
        risk_at=m.risk_at,
        paused=m.paused,
        explain=explain_target(target, m, policy, severity, now, tz),
        calendar=target.calendar,
        duration=target.duration,
        start_seq=m.start_ev.event.seq if m.start_ev else None,
        stop_seq=m.stop_ev.event.seq if m.stop_ev else None,
        unknown_year=m.unknown_year,
    )


def wakes_at(status: str, deadline: datetime | None, risk_at: datetime | None) -> datetime | None:
    """When a target changes by itself: its warning instant, or just after its deadline
    (a breach is `now > deadline`)."""
    if status == TargetStatus.RUNNING and risk_at is not None:
        return risk_at
    if status in CLOCK_RUNNING and deadline is not None:
        return deadline + AFTER_DEADLINE
    return None


# A partial timeline --------------------------------------------------------------------------
# An append to a long ticket without corrections is judged by the few events the rules turn
# on, read by index, not by the whole timeline: any part of the timeline that holds them
# judges as the whole does (tests/judging/test_partial_timeline.py checks it on random
# timelines). Without corrections an event's effective time is its own.

WHOLE = ("paused", "resumed", "severity_changed")  # every one of these is read
LAST_OF = RESOLUTION_EVENTS  # the last of each, besides the first of every other type


@dataclass(frozen=True)
class Seek:
    """The first event (by time, then seq) of `type` (None: of any type, with evidence) at
    or after `at`, and after `seq` where it is at `at` (0: any seq)."""

    type: str | None
    at: datetime
    seq: int = 0


def seeks(timeline: Sequence[Effective], reported_severity: str, policy: Policy) -> list[Seek]:
    """What `judge` may turn on besides a partial timeline holding the first event of each
    type, the last of each resolution kind, and every pause, resume and severity change:
    the first reopen after each of those lasts (it clears it), and the first stop event at or
    after each target's start."""
    out = []
    last = {x.type: x for x in timeline if x.type in LAST_OF}  # (in time order: the last)
    for x in last.values():
        out.append(Seek("reopened", x.at, x.event.seq))
    severity, _ = current_severity(reported_severity, timeline)
    for target in policy.severities[severity].targets:
        if target.start in LAST_OF:
            start = last.get(target.start)
        else:
            start = next((x for x in timeline if x.type == target.start), None)
        if start is not None and target.stop not in LAST_OF:
            out.append(Seek(target.stop, start.at))
    return out


def ticket_status(timeline: Sequence[Effective]) -> TicketStatus:
    resolved, _ = _last_unreopened(timeline, "resolved")
    if resolved is None:
        return TicketStatus.OPEN
    verified, _ = _last_unreopened(timeline, "verified", after=resolved.at)
    return TicketStatus.CLOSED if verified is not None else TicketStatus.RESOLVED


def judge(
    events: Sequence[TimelineEvent],
    reported_severity: str,
    policy: Policy,
    calendar: WorkCalendar,
    now: datetime,
    tz: tzinfo,
    effective: Sequence[Effective] | None = None,
) -> Judgement:
    """Every target of the ticket's current severity, judged at `now`; `effective` is
    `apply_corrections(events)` when the caller has it already."""
    timeline = apply_corrections(events) if effective is None else effective
    severity, changes = current_severity(reported_severity, timeline)
    targets = []
    for target in policy.severities[severity].targets:
        res = judge_target(target, timeline, policy, severity, calendar, now, tz)
        if changes:
            note = "；".join(
                f"{show(c.at, tz)} 由事件 {c.event.label} 改为 {c.event.severity}" for c in changes
            )
            res = _with_prefix(
                res,
                f"严重程度：报障时为 {reported_severity}，{note}；"
                f"按现级别 {severity} 自原起点重新计算。",
            )
        targets.append(res)
    return Judgement(severity, ticket_status(timeline), targets)


def _with_prefix(res: TargetResult, words: str) -> TargetResult:
    first, _, rest = res.explain.partition("\n")
    return replace(res, explain="\n".join(x for x in (first, words, rest) if x))
