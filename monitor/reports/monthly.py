"""The supervision unit's monthly report (监理月报), every figure recomputed from raw events."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from monitor.breaches.findings import KINDS, Thresholds, entry_lag
from monitor.breaches.models import Breach, BreachReview, Finding
from monitor.breaches.service import held_corrections
from monitor.core.timeutil import human_duration, month_bounds, show
from monitor.sla.service import SlaContext
from monitor.sla.vocab import EVENT_LABELS, Review, TargetStatus
from monitor.tickets.models import Event, Ticket
from monitor.tickets.service import events_of, judge_ticket

METHOD = [
    "工单：报障时间（经更正后）落在本月（{zone}）的全部工单，按资源池和严重程度计数。",
    "SLA 目标：不采用运营单位填报的结论，由本系统依据每张工单的原始事件（含更正记录）、"
    "工单报障时生效的 SLA 策略版本和国家法定工作日历，在报告生成时刻重新计算。",
    "超时：上述重新计算中状态为 breached 的目标；审核状态取监理单位最后一次审核记录，"
    "无审核记录的为 pending（待审核）。",
    "数据质量：本月新开和本月关闭的数据质量发现。",
    "补录：本月登记、但登记时间晚于事件发生时间超过 {late} 小时的事件"
    "（不含导入的历史数据和更正事件）。",
]


def monthly_report(session: Session, ctx: SlaContext, year: int, month: int) -> dict[str, Any]:
    now = ctx.now()
    begin, end = month_bounds(year, month, ctx.tz)
    tickets = session.exec(
        select(Ticket)
        .where(col(Ticket.reported_at) >= begin, col(Ticket.reported_at) < end)
        .order_by(col(Ticket.reported_at))
    ).all()
    by_pool: dict[str, Counter[str]] = defaultdict(Counter)
    status_counts: Counter[str] = Counter()
    targets: dict[tuple[str, str, str], Counter[str]] = defaultdict(Counter)
    breach_rows = []
    ids = [t.id for t in tickets if t.id is not None]
    reviews = _latest_reviews(session, ids)
    events = events_of(session, ids)
    held = held_corrections(session, ids)
    for ticket in tickets:
        assert ticket.id is not None
        judgement = judge_ticket(
            ctx, ticket, events.get(ticket.id, []), now, held.get(ticket.id, set())
        )
        ref = ticket.external_id or str(ticket.id)
        by_pool[ticket.pool][judgement.severity] += 1
        status_counts[judgement.status] += 1
        for t in judgement.targets:
            targets[(ticket.pool, judgement.severity, t.target)][t.status] += 1
            if t.status == TargetStatus.BREACHED:
                review = reviews.get((ticket.id, t.target))
                breach_rows.append(
                    {
                        "ticket": ticket.id,
                        "ref": ref,
                        "pool": ticket.pool,
                        "severity": judgement.severity,
                        "target": t.target,
                        "name": t.name,
                        "deadline": show(t.deadline, ctx.tz),
                        "stop": show(t.stop, ctx.tz),
                        "overrun": human_duration(t.overrun) if t.overrun else "—",
                        "review": review.decision if review else Review.PENDING,
                        "reviewer": review.reviewer if review else "",
                        "reason": review.reason if review else "",
                    }
                )
    opened = session.exec(
        select(Finding).where(col(Finding.opened_at) >= begin, col(Finding.opened_at) < end)
    ).all()
    closed = session.exec(
        select(Finding).where(col(Finding.closed_at) >= begin, col(Finding.closed_at) < end)
    ).all()
    limits = Thresholds.of(ctx.settings)
    late = limits.late_entry
    late_rows = []
    for e, ticket in session.exec(
        select(Event, Ticket)
        .join(Ticket, col(Ticket.id) == Event.ticket_id)
        .where(col(Event.recorded_at) >= begin, col(Event.recorded_at) < end)
        .order_by(col(Event.recorded_at))
    ).all():
        if entry_lag(e, limits) is not None:
            late_rows.append(
                {
                    "ref": ticket.external_id or str(ticket.id),
                    "pool": ticket.pool,
                    "seq": e.seq,
                    "type": e.type,
                    "occurred_at": show(e.occurred_at, ctx.tz),
                    "recorded_at": show(e.recorded_at, ctx.tz),
                    "actor": e.actor,
                    "lag": human_duration(e.recorded_at - e.occurred_at),
                }
            )
    review_counts = Counter(r["review"] for r in breach_rows)
    return {
        "month": f"{year:04d}-{month:02d}",
        "generated_at": show(now, ctx.tz),
        "method": [
            m.format(zone=ctx.settings.timezone, late=f"{late.total_seconds() / 3600:g}")
            for m in METHOD
        ],
        "tickets": {
            "total": len(tickets),
            "by_pool": {p: dict(c) for p, c in sorted(by_pool.items())},
            "status": dict(status_counts),
        },
        "targets": [
            {"pool": p, "severity": s, "target": t, **dict(c)}
            for (p, s, t), c in sorted(targets.items())
        ],
        "breaches": breach_rows,
        "breach_reviews": {k: review_counts.get(k, 0) for k in ("pending", "confirmed", "waived")},
        "findings_opened": [_finding(f, ctx) for f in opened],
        "findings_closed": [_finding(f, ctx) for f in closed],
        "late_entries": late_rows,
    }


def _latest_reviews(session: Session, ticket_ids: list[int]) -> dict[tuple[int, str], BreachReview]:
    out: dict[tuple[int, str], BreachReview] = {}
    if not ticket_ids:
        return out
    rows = session.exec(
        select(Breach, BreachReview)
        .join(BreachReview, col(BreachReview.breach_id) == Breach.id)
        .where(col(Breach.ticket_id).in_(ticket_ids))
        .order_by(col(BreachReview.id))
    ).all()
    for breach, review in rows:
        out[(breach.ticket_id, breach.target)] = review
    return out


def _finding(f: Finding, ctx: SlaContext) -> dict[str, Any]:
    return {
        "id": f.id,
        "kind": f.kind,
        "label": KINDS.get(f.kind, f.kind),
        "ticket": f.ticket_id,
        "pool": f.pool,
        "detail": f.detail,
        "opened_at": show(f.opened_at, ctx.tz),
        "closed_at": show(f.closed_at, ctx.tz) if f.closed_at else "",
    }


def to_markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# 监理月报 {report['month']}",
        "",
        f"生成时间：{report['generated_at']}",
        "",
        "## 计算方法",
        "",
    ]
    lines += [f"- {m}" for m in report["method"]]
    t = report["tickets"]
    lines += [
        "",
        "## 工单",
        "",
        f"本月报障工单 {t['total']} 张。",
        "",
        "| 资源池 | 严重程度 | 工单数 |",
        "|---|---|---|",
    ]
    for pool, sev in t["by_pool"].items():
        lines += [f"| {pool} | {s} | {n} |" for s, n in sorted(sev.items())]
    lines += [
        "",
        "## SLA 目标",
        "",
        "| 资源池 | 严重程度 | 目标 | 按时 | 超时 | 其他 |",
        "|---|---|---|---|---|---|",
    ]
    for row in report["targets"]:
        other = sum(
            v for k, v in row.items() if k not in ("pool", "severity", "target", "met", "breached")
        )
        lines.append(
            f"| {row['pool']} | {row['severity']} | {row['target']} | "
            f"{row.get('met', 0)} | {row.get('breached', 0)} | {other} |"
        )
    r = report["breach_reviews"]
    lines += [
        "",
        "## 超时及审核",
        "",
        f"共 {len(report['breaches'])} 项超时：待审核 {r['pending']}，已确认 {r['confirmed']}，"
        f"已豁免 {r['waived']}。",
        "",
        "| 工单 | 资源池 | 目标 | 截止 | 完成 | 超出 | 审核 | 审核人 | 理由 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for b in report["breaches"]:
        lines.append(
            f"| {b['ref']} | {b['pool']} | {b['name']}({b['target']}) | {b['deadline']} | "
            f"{b['stop']} | {b['overrun']} | {b['review']} | {b['reviewer']} | "
            f"{b['reason']} |"
        )
    for title, key in (
        ("本月新开的数据质量发现", "findings_opened"),
        ("本月关闭的数据质量发现", "findings_closed"),
    ):
        lines += ["", f"## {title}", ""]
        lines += [
            f"- [{f['label']}] 工单 {f['ticket'] or '—'}：{f['detail']}" for f in report[key]
        ] or ["无。"]
    lines += ["", "## 补录事件", ""]
    lines += [
        f"- {e['ref']} #{e['seq']} {EVENT_LABELS.get(e['type'], e['type'])}：发生于 "
        f"{e['occurred_at']}，{e['recorded_at']} 由 {e['actor']} 登记，迟 {e['lag']}"
        for e in report["late_entries"]
    ] or ["无。"]
    return "\n".join(lines) + "\n"


def write_xlsx(report: dict[str, Any], path: Path) -> None:
    from openpyxl import Workbook

    book = Workbook()
    summary = book.active
    assert summary is not None
    summary.title = "概要"
    summary.append(["监理月报", report["month"]])
    summary.append(["生成时间", report["generated_at"]])
    summary.append(["本月报障工单", report["tickets"]["total"]])
    for k, v in report["breach_reviews"].items():
        summary.append([f"超时（{k}）", v])
    summary.append([])
    summary.append(["计算方法"])
    for m in report["method"]:
        summary.append([m])
    sheet = book.create_sheet("SLA目标")
    sheet.append(
        [
            "资源池",
            "严重程度",
            "目标",
            "按时",
            "超时",
            "计时中",
            "即将超时",
            "未开始",
            "暂停",
            "日历未知",
        ]
    )
    for row in report["targets"]:
        sheet.append(
            [
                row["pool"],
                row["severity"],
                row["target"],
                row.get("met", 0),
                row.get("breached", 0),
                row.get("running", 0),
                row.get("at_risk", 0),
                row.get("not_started", 0),
                row.get("paused", 0),
                row.get("unknown_calendar", 0),
            ]
        )
    sheet = book.create_sheet("超时及审核")
    sheet.append(
        ["工单", "资源池", "严重程度", "目标", "截止", "完成", "超出", "审核", "审核人", "理由"]
    )
    for b in report["breaches"]:
        sheet.append(
            [
                b["ref"],
                b["pool"],
                b["severity"],
                b["target"],
                b["deadline"],
                b["stop"],
                b["overrun"],
                b["review"],
                b["reviewer"],
                b["reason"],
            ]
        )
    sheet = book.create_sheet("数据质量")
    sheet.append(["状态", "类别", "工单", "资源池", "说明", "开启", "关闭"])
    for key, label in (("findings_opened", "本月新开"), ("findings_closed", "本月关闭")):
        for f in report[key]:
            sheet.append(
                [
                    label,
                    f["label"],
                    f["ticket"],
                    f["pool"],
                    f["detail"],
                    f["opened_at"],
                    f["closed_at"],
                ]
            )
    sheet = book.create_sheet("补录事件")
    sheet.append(["工单", "资源池", "序号", "事件", "发生时间", "登记时间", "登记人", "迟延"])
    for e in report["late_entries"]:
        sheet.append(
            [
                e["ref"],
                e["pool"],
                e["seq"],
                e["type"],
                e["occurred_at"],
                e["recorded_at"],
                e["actor"],
                e["lag"],
            ]
        )
    book.save(path)
