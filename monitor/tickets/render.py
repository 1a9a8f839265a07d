"""A ticket as text for the terminal, in the words a supervisor attaches to a dispute."""

from __future__ import annotations

from datetime import datetime, tzinfo

from monitor.core.timeutil import show
from monitor.sla.vocab import EVENT_LABELS, STATUS_LABELS
from monitor.tickets.schemas import TicketOut


def _local(text: str | None, tz: tzinfo) -> str:
    return show(datetime.fromisoformat(text), tz) if text else "—"


def ticket_text(t: TicketOut, tz: tzinfo) -> str:
    lines = [
        f"工单 #{t.id}" + (f"  外部单号 {t.external_id}" if t.external_id else ""),
        f"  {t.title}",
        f"  资源池 {t.pool}  严重程度 {t.current_severity}"
        + (f"（报障时 {t.severity}）" if t.severity != t.current_severity else "")
        + f"  状态 {t.status}  来源 {t.source}  策略 {t.policy_version}",
    ]
    if t.units or t.systems:
        lines.append(
            f"  使用单位 {', '.join(t.units) or '—'}  业务系统 {', '.join(t.systems) or '—'}"
        )
    lines += ["", "时间线 (timeline):"]
    for e in t.events:
        label = EVENT_LABELS.get(e.type, e.type)
        line = f"  #{e.seq:<3} {_local(e.at, tz)}  {label}({e.type})"
        if e.id != str(e.seq):
            line += f" id={e.id}"
        if e.severity:
            line += f" → {e.severity}"
        if e.corrects:
            line += f" 更正事件 {e.corrects}，原因：{e.reason}"
        if e.corrected_at:
            line += f"  [已更正为 {_local(e.corrected_at, tz)}]"
        line += f"  由 {e.actor}({e.role}/{e.source}) 于 {_local(e.recorded_at, tz)} 登记"
        if e.note:
            line += f"  备注：{e.note}"
        if e.evidence:
            line += f"  佐证：{', '.join(map(str, e.evidence))}"
        lines.append(line)
    lines += ["", "SLA 目标 (targets):"]
    for target in t.targets:
        lines.append(
            f"  {target.name}({target.id})  {STATUS_LABELS.get(target.status, target.status)}"
            f"({target.status})  截止 {_local(target.deadline, tz)}"
        )
        lines += [f"      {x}" for x in target.explain.splitlines()]
    return "\n".join(lines)
