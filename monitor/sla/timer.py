"""The SLA clock: policy + calendar + a ticket's events + now -> each target's state, explained.

Pure: no database, no system time. Every rule of the specification's SLA semantics lives here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, tzinfo

from monitor.calendars.calendar import WorkCalendar
from monitor.core.errors import UnknownCalendarYear
from monitor.core.timeutil import human_duration, show
from monitor.sla.policy import Policy, Target
from monitor.sla.vocab import EVENT_LABELS, RESOLUTION_EVENTS

END_OF_DAY = time(23, 59, 59, 999999)


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
    corrections: tuple[TimelineEvent, ...] = ()

    @property
    def type(self) -> str:
        return self.event.type

    @property
    def claimed_at(self) -> datetime:
        return self.event.at


@dataclass(frozen=True)
class TargetResult:
    target: str
    name: str
    status: str
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
    status: str  # open | resolved | closed
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
        out.append(Effective(e, applied[-1].at if applied else e.at, applied))
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


def judge_target(
    target: Target,
    timeline: Sequence[Effective],
    policy: Policy,
    severity: str,
    calendar: WorkCalendar,
    now: datetime,
    tz: tzinfo,
) -> TargetResult:
    sev_name = policy.severities[severity].name
    calendar_words = "7×24 小时连续计时" if target.calendar == "24x7" else "按国家法定工作日计"
    lines = [
        f"目标「{target.name}」({target.id})：依据策略 {policy.version}"
        f"（{policy.effective_from.isoformat()} 起生效），{sev_name}({severity})，"
        f"自{EVENT_LABELS[target.start]}({target.start})至{EVENT_LABELS[target.stop]}"
        f"({target.stop})，时限 {target.duration}，{calendar_words}。"
    ]

    def result(status: str, **kw: object) -> TargetResult:
        base: dict[str, object] = {
            "target": target.id,
            "name": target.name,
            "status": status,
            "start": None,
            "deadline": None,
            "stop": None,
            "elapsed": None,
            "overrun": None,
            "risk_at": None,
            "paused": timedelta(),
            "explain": "\n".join(lines),
            "calendar": target.calendar,
            "duration": target.duration,
        }
        base.update(kw)
        return TargetResult(**base)  # type: ignore[arg-type]

    start_ev, start_reopen = _anchor(timeline, target.start)
    if start_ev is None:
        if start_reopen is not None:
            lines.append(
                f"起点已被{_event_words(start_reopen, tz)}清除，等待新的"
                f"{EVENT_LABELS[target.start]}({target.start})。"
            )
        else:
            lines.append(f"尚无{EVENT_LABELS[target.start]}({target.start})事件，计时未开始。")
        return result("not_started")
    start = start_ev.at
    lines.append(f"起点：{_event_words(start_ev, tz)}。")

    stop_ev, stop_reopen = _anchor(timeline, target.stop, after=start)
    stop = stop_ev.at if stop_ev else None
    end = stop if stop is not None else max(now, start)

    # Base deadline from the calendar, before pauses.
    if target.calendar == "24x7":
        base_deadline = start + target.span
    else:
        n = target.workdays
        start_day = start.astimezone(tz).date()
        try:
            count = calendar.count_workdays_after(start_day, n)
        except UnknownCalendarYear as exc:
            lines.append(
                f"{n} 个工作日的截止日需要 {exc.year} 年的工作日安排，该年日历尚未载入，"
                f"不作推测；请载入 {exc.year} 年国务院节假日安排后重新计算。"
            )
            return result(
                "unknown_calendar",
                start=start,
                stop=stop,
                start_seq=start_ev.event.seq,
                stop_seq=stop_ev.event.seq if stop_ev else None,
                unknown_year=exc.year,
            )
        base_deadline = datetime.combine(count.deadline_day, END_OF_DAY, tz).astimezone(
            start.tzinfo
        )
        counted = "、".join(d.describe() for d in count.counted)
        words = (
            f"{n} 个工作日：自起点本地日期 {start_day.isoformat()} 的次日起逐日计数，计入 {counted}"
        )
        if count.skipped:
            words += f"；跳过 {'、'.join(d.describe() for d in count.skipped)}"
        sources = sorted({d.source for d in (*count.counted, *count.skipped)})
        words += (
            f"；截止为第 {n} 个工作日 {count.deadline_day.isoformat()} 的 "
            f"23:59:59.999999（本地时间）。日历来源：{'、'.join(sources)}。"
        )
        lines.append(words)
    allowed = base_deadline - start

    pauses = pauses_between(timeline, start, end) if target.pausable else []
    if not target.pausable:
        ignored = pauses_between(timeline, start, end)
        if ignored:
            lines.append(
                f"该目标不可暂停：期间的暂停（共 {human_duration(paused_total(ignored, end))}）"
                "照常计时。"
            )
    deadline = after_active(start, allowed, pauses)
    paused_for = paused_total(pauses, end)
    if pauses:
        lines.append(
            f"暂停 {len(pauses)} 次，共 {human_duration(paused_for)} 不计时，截止时间相应顺延。"
        )
    elapsed = (end - start) - paused_for
    risk_at = after_active(start, allowed * target.warn_at, pauses)

    if stop_ev is not None:
        lines.append(f"终点：{_event_words(stop_ev, tz)}。")
    elif stop_reopen is not None:
        lines.append(
            f"此前的{EVENT_LABELS[target.stop]}已被{_event_words(stop_reopen, tz)}清除，"
            f"以最后一次{EVENT_LABELS[target.stop]}为准；目前尚未停止。"
        )
    else:
        lines.append(
            f"尚无{EVENT_LABELS[target.stop]}({target.stop})事件，截至 {show(now, tz)} 仍在计时。"
        )

    common = {
        "start": start,
        "stop": stop,
        "paused": paused_for,
        "start_seq": start_ev.event.seq,
        "stop_seq": stop_ev.event.seq if stop_ev else None,
    }
    if deadline is None:
        # Paused with the clock frozen: no deadline until it resumes.
        remaining = allowed - elapsed
        lines.append(
            f"当前暂停中，剩余时限 {human_duration(remaining)}，恢复计时后重新计算截止时间。"
        )
        return result("paused", elapsed=elapsed, **common)
    lines.append(f"截止时间：{show(deadline, tz)}。")
    if stop is not None:
        if stop <= deadline:
            lines.append(
                f"结果：按时完成（met），用时 {human_duration(elapsed)}，"
                f"距截止尚余 {human_duration(deadline - stop)}。"
            )
            return result("met", deadline=deadline, elapsed=elapsed, **common)
        overrun = stop - deadline
        lines.append(f"结果：超时（breached），超出 {human_duration(overrun)}。")
        return result("breached", deadline=deadline, elapsed=elapsed, overrun=overrun, **common)
    if now > deadline:
        overrun = now - deadline
        lines.append(
            f"结果：已超时（breached），截至 {show(now, tz)} 超出 {human_duration(overrun)}。"
        )
        return result("breached", deadline=deadline, elapsed=elapsed, overrun=overrun, **common)
    if elapsed >= allowed * target.warn_at:
        lines.append(
            f"结果：即将超时（at_risk），已用 {human_duration(elapsed)}，"
            f"达到时限的 {target.warn_at:.0%} 预警线。"
        )
        return result("at_risk", deadline=deadline, elapsed=elapsed, risk_at=risk_at, **common)
    lines.append(f"结果：计时中（running），已用 {human_duration(elapsed)}。")
    return result("running", deadline=deadline, elapsed=elapsed, risk_at=risk_at, **common)


def ticket_status(timeline: Sequence[Effective]) -> str:
    resolved, _ = _last_unreopened(timeline, "resolved")
    if resolved is None:
        return "open"
    verified, _ = _last_unreopened(timeline, "verified", after=resolved.at)
    return "closed" if verified is not None else "resolved"


def judge(
    events: Sequence[TimelineEvent],
    reported_severity: str,
    policy: Policy,
    calendar: WorkCalendar,
    now: datetime,
    tz: tzinfo,
) -> Judgement:
    """Every target of the ticket's current severity, judged at `now`."""
    timeline = apply_corrections(events)
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
    from dataclasses import replace

    first, _, rest = res.explain.partition("\n")
    return replace(res, explain="\n".join(x for x in (first, words, rest) if x))
