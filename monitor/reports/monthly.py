"""The supervision unit's monthly report (监理月报), every figure recomputed from raw events."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import tzinfo
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from monitor.breaches.findings import KINDS, Thresholds, entry_lag
from monitor.breaches.models import Breach, BreachReview, Finding
from monitor.breaches.service import held_corrections
from monitor.core.timeutil import human_duration, month_bounds, show
from monitor.reports.sheets import (
    MEDIA_TYPES,
    Download,
    add_sheet,
    book_bytes,
    csv_bytes,
    local,
    new_book,
    offset_label,
)
from monitor.sla.service import SlaContext
from monitor.sla.vocab import REVIEW_LABELS, Review, TargetStatus
from monitor.sla.words import words
from monitor.tickets.models import Event, Ticket
from monitor.tickets.service import events_of, judge_ticket

METHOD = [
    "工单：报障时间（经更正后）落在本月（{zone}）的全部工单，按资源池和严重程度计数。",
    "SLA 目标：不采用运营单位填报的结论，由本系统依据每张工单的原始事件（含更正记录）、"
    "工单报障时生效的 SLA 策略版本和国家法定工作日历，在报告生成时刻重新计算。",
    "超时：上述重新计算中状态为“超时”的目标；审核状态取监理单位最后一次审核记录，"
    "无审核记录的为“待审核”。",
    "数据质量：本月新开和本月关闭的数据质量发现；关于往年报障工单的发现单列。",
    "补录：本月登记、但登记时间晚于事件发生时间超过 {late} 小时的事件"
    "（不含导入的历史数据和更正事件）。",
]


def parse_month(text: str) -> tuple[int, int]:
    """YYYY-MM as (year, month)."""
    match = re.fullmatch(r"(\d{4})-(\d{1,2})", text.strip())
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise ValueError(f"{text!r} is not YYYY-MM, e.g. 2022-08")
    return int(match.group(1)), int(match.group(2))


def monthly_report(session: Session, ctx: SlaContext, year: int, month: int) -> dict[str, Any]:
    now = ctx.now()
    w = words(ctx)
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
                        "pool_label": w.pool_label(ticket.pool),
                        "severity": judgement.severity,
                        "severity_label": w.severity_label(judgement.severity),
                        "target": t.target,
                        "name": t.name,
                        "deadline": show(t.deadline, ctx.tz),
                        "stop": show(t.stop, ctx.tz),
                        "deadline_at": t.deadline,
                        "stop_at": t.stop,
                        "overrun": human_duration(t.overrun) if t.overrun else "—",
                        "review": review.decision if review else Review.PENDING,
                        "review_label": w.review_label(
                            review.decision if review else Review.PENDING
                        ),
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
                    "pool_label": w.pool_label(ticket.pool),
                    "seq": e.seq,
                    "type": e.type,
                    "type_label": w.event_label(e.type),
                    "occurred_at": show(e.occurred_at, ctx.tz),
                    "recorded_at": show(e.recorded_at, ctx.tz),
                    "occurred": e.occurred_at,
                    "recorded": e.recorded_at,
                    "actor": e.actor,
                    "lag": human_duration(e.recorded_at - e.occurred_at),
                }
            )
    review_counts = Counter(r["review"] for r in breach_rows)
    return {
        "month": f"{year:04d}-{month:02d}",
        "generated_at": show(now, ctx.tz),
        "generated": now,
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
        **_findings(session, ctx, year, opened, closed),
        "late_entries": late_rows,
        "labels": {
            "pools": w.pool_names,
            "severities": w.severity_names,
            "targets": w.target_names,
        },
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


def _findings(
    session: Session,
    ctx: SlaContext,
    year: int,
    opened: Sequence[Finding],
    closed: Sequence[Finding],
) -> dict[str, list[dict[str, Any]]]:
    """Findings opened and closed in the month: the year's own, and (apart) those about
    tickets reported in other years."""
    ids = {f.ticket_id for f in (*opened, *closed) if f.ticket_id is not None}
    tickets = {t.id: t for t in session.exec(select(Ticket).where(col(Ticket.id).in_(ids))).all()}
    out: dict[str, list[dict[str, Any]]] = {
        "findings_opened": [],
        "findings_closed": [],
        "findings_other_years": [],
    }
    for key, found in (("findings_opened", opened), ("findings_closed", closed)):
        for f in found:
            ticket = tickets.get(f.ticket_id) if f.ticket_id is not None else None
            row = _finding(f, ticket, ctx)
            if ticket is not None and ticket.reported_at.astimezone(ctx.tz).year != year:
                row["state"] = "本月新开" if key == "findings_opened" else "本月关闭"
                out["findings_other_years"].append(row)
            else:
                out[key].append(row)
    return out


def _finding(f: Finding, ticket: Ticket | None, ctx: SlaContext) -> dict[str, Any]:
    w = words(ctx)
    return {
        "id": f.id,
        "kind": f.kind,
        "label": KINDS.get(f.kind, f.kind),
        "ticket": f.ticket_id,
        "ref": (ticket.external_id or str(ticket.id)) if ticket else "—",
        "reported_year": ticket.reported_at.astimezone(ctx.tz).year if ticket else None,
        "pool": f.pool,
        "pool_label": w.pool_label(f.pool) if f.pool else "",
        "opened": f.opened_at,
        "closed": f.closed_at,
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
    labels = report["labels"]
    for pool, sev in t["by_pool"].items():
        lines += [
            f"| {labels['pools'].get(pool, pool)} | {labels['severities'].get(s, s)} | {n} |"
            for s, n in sorted(sev.items())
        ]
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
            f"| {labels['pools'].get(row['pool'], row['pool'])} | "
            f"{labels['severities'].get(row['severity'], row['severity'])} | "
            f"{labels['targets'].get(row['target'], row['target'])} | "
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
            f"| {b['ref']} | {b['pool_label']} | {b['name']} | {b['deadline']} | "
            f"{b['stop']} | {b['overrun']} | {b['review_label']} | {b['reviewer']} | "
            f"{b['reason']} |"
        )
    for title, key in (
        ("本月新开的数据质量发现", "findings_opened"),
        ("本月关闭的数据质量发现", "findings_closed"),
    ):
        lines += ["", f"## {title}", ""]
        lines += [f"- [{f['label']}] {f['ref']}：{f['detail']}" for f in report[key]] or ["无。"]
    lines += ["", "## 往年工单的数据质量发现", ""]
    lines += [
        f"- {f['state']} [{f['label']}] {f['ref']}（{f['reported_year']} 年报障）：{f['detail']}"
        for f in report["findings_other_years"]
    ] or ["无。"]
    lines += ["", "## 补录事件", ""]
    lines += [
        f"- {e['ref']} #{e['seq']} {e['type_label']}：发生于 "
        f"{e['occurred_at']}，{e['recorded_at']} 由 {e['actor']} 登记，迟 {e['lag']}"
        for e in report["late_entries"]
    ] or ["无。"]
    return "\n".join(lines) + "\n"


TARGET_COLUMNS = {
    "met": "按时",
    "breached": "超时",
    "running": "计时中",
    "at_risk": "即将超时",
    "not_started": "未开始",
    "paused": "暂停",
    "unknown_calendar": "日历未知",
}


def xlsx_bytes(report: dict[str, Any], tz: tzinfo) -> bytes:
    """The report for Excel: Chinese labels (codes beside them), local date-time cells."""
    labels = report["labels"]
    zone = offset_label(tz, report["generated"])
    book = new_book()
    summary = [
        ["监理月报", report["month"]],
        [f"生成时间（{zone}）", local(report["generated"], tz)],
        ["本月报障工单", report["tickets"]["total"]],
        *[[f"超时（{REVIEW_LABELS[k]}）", v] for k, v in report["breach_reviews"].items()],
        ["计算方法", ""],
        *[["", m] for m in report["method"]],
    ]
    add_sheet(book, "概要", ["项目", "内容"], summary)
    add_sheet(
        book,
        "SLA目标",
        [
            "资源池",
            "严重程度",
            "目标",
            *TARGET_COLUMNS.values(),
            "资源池代码",
            "严重程度代码",
            "目标代码",
        ],
        [
            [
                labels["pools"].get(row["pool"], row["pool"]),
                labels["severities"].get(row["severity"], row["severity"]),
                labels["targets"].get(row["target"], row["target"]),
                *[row.get(k, 0) for k in TARGET_COLUMNS],
                row["pool"],
                row["severity"],
                row["target"],
            ]
            for row in report["targets"]
        ],
    )
    add_sheet(
        book,
        "超时及审核",
        [
            "外部单号",
            "资源池",
            "严重程度",
            "目标",
            f"截止（{zone}）",
            f"完成（{zone}）",
            "超出",
            "审核",
            "审核人",
            "理由",
            "资源池代码",
            "严重程度代码",
            "目标代码",
            "审核代码",
        ],
        [
            [
                b["ref"],
                b["pool_label"],
                b["severity_label"],
                b["name"],
                local(b["deadline_at"], tz),
                local(b["stop_at"], tz),
                b["overrun"],
                b["review_label"],
                b["reviewer"],
                b["reason"],
                b["pool"],
                b["severity"],
                b["target"],
                b["review"],
            ]
            for b in report["breaches"]
        ],
    )
    rows = []
    for key, state in (("findings_opened", "本月新开"), ("findings_closed", "本月关闭")):
        rows += [[state, "本年", *_finding_cells(f, tz)] for f in report[key]]
    rows += [
        [f["state"], f"{f['reported_year']} 年", *_finding_cells(f, tz)]
        for f in report["findings_other_years"]
    ]
    add_sheet(
        book,
        "数据质量",
        [
            "状态",
            "工单年份",
            "类别",
            "外部单号",
            "资源池",
            "说明",
            f"开启（{zone}）",
            f"关闭（{zone}）",
            "类别代码",
        ],
        rows,
    )
    add_sheet(
        book,
        "补录事件",
        [
            "外部单号",
            "资源池",
            "序号",
            "事件",
            f"发生时间（{zone}）",
            f"登记时间（{zone}）",
            "登记人",
            "迟延",
            "事件代码",
        ],
        [
            [
                e["ref"],
                e["pool_label"],
                e["seq"],
                e["type_label"],
                local(e["occurred"], tz),
                local(e["recorded"], tz),
                e["actor"],
                e["lag"],
                e["type"],
            ]
            for e in report["late_entries"]
        ],
    )
    return book_bytes(book)


def _finding_cells(f: dict[str, Any], tz: tzinfo) -> list[Any]:
    return [
        f["label"],
        f["ref"],
        f["pool_label"],
        f["detail"],
        local(f["opened"], tz),
        local(f["closed"], tz),
        f["kind"],
    ]


def write_xlsx(report: dict[str, Any], tz: tzinfo, path: Path) -> None:
    path.write_bytes(xlsx_bytes(report, tz))


def breaches_csv(report: dict[str, Any], encoding: str = "utf-8-sig") -> bytes:
    """The month's breaches and their review, as CSV for Excel."""
    headers = [
        "外部单号",
        "资源池",
        "严重程度",
        "目标",
        "截止",
        "完成",
        "超出",
        "审核",
        "审核人",
        "理由",
    ]
    rows = [
        [
            b["ref"],
            b["pool_label"],
            b["severity_label"],
            b["name"],
            b["deadline"],
            b["stop"],
            b["overrun"],
            b["review_label"],
            b["reviewer"],
            b["reason"],
        ]
        for b in report["breaches"]
    ]
    return csv_bytes(headers, rows, encoding)


def monthly_download(report: dict[str, Any], fmt: str, tz: tzinfo) -> Download:
    """The report as a file for a person, named e.g. 2022年08月监理月报.xlsx (csv: the
    breaches table; md: the whole report)."""
    year, month = report["month"].split("-")
    name = f"{year}年{month}月监理月报.{fmt}"
    if fmt == "xlsx":
        return Download(xlsx_bytes(report, tz), name, MEDIA_TYPES["xlsx"])
    if fmt == "csv":
        return Download(breaches_csv(report), name, MEDIA_TYPES["csv"])
    return Download(to_markdown(report).encode(), name, MEDIA_TYPES["md"])
