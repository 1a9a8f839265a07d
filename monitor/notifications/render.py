"""What a notice says, in Chinese, at the moment it is sent (pure: no storage, no clock)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from monitor.core.timeutil import human_duration, show
from monitor.notifications.models import KIND_LABELS, Notice, NoticeKind


@dataclass(frozen=True)
class Message:
    title: str
    body: str


def ticket_link(public_url: str, ticket_id: int | None) -> str | None:
    if not public_url or ticket_id is None:
        return None
    return f"{public_url.rstrip('/')}/tickets/{ticket_id}"


def render(notice: Notice, now: datetime, tz: tzinfo, public_url: str = "") -> Message:
    """Title and body; time left or time late is computed at `now`, when it is sent."""
    label = KIND_LABELS.get(notice.kind, notice.kind)
    if notice.kind == NoticeKind.CALENDAR_MISSING:
        return Message(f"【{label}】{notice.title or ''}".strip(), notice.detail)
    ref = notice.ticket_ref or f"#{notice.ticket_id}"
    title = f"【{label}】{notice.pool_name} {notice.severity_name} {ref} {notice.target_name}"
    lines = [
        f"【{label}】{notice.title}",
        f"工单：{ref}（系统编号 {notice.ticket_id}）",
        f"资源池：{notice.pool_name}",
        f"严重程度：{notice.severity_name}",
        f"时限：{notice.target_name}",
        f"截止时间：{show(notice.deadline, tz)}",
    ]
    if notice.deadline is not None:
        left = notice.deadline - now
        if left > timedelta():
            lines.append(f"剩余时间：{human_duration(_whole(left))}")
        elif -left < timedelta(seconds=1):
            lines.append("已超时：刚过截止时间")
        else:
            lines.append(f"已超时：{human_duration(_whole(-left))}")
    if notice.kind == NoticeKind.REVIEW_DUE and notice.since is not None:
        waited = human_duration(_whole(now - notice.since))
        lines.append(f"待复核：{show(notice.since, tz)} 记录超时，已等待 {waited}")
    if notice.detail:
        lines.append(notice.detail)
    link = ticket_link(public_url, notice.ticket_id)
    if link:
        lines.append(f"查看：{link}")
    return Message(title, "\n".join(lines))


def _whole(delta: timedelta) -> timedelta:
    """Whole seconds, so a notice says 5分 rather than 4分59秒 for a sub-second lag."""
    return timedelta(seconds=round(delta.total_seconds()))
