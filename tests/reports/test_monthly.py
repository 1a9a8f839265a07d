"""The monthly supervision report recomputes its figures from the raw events."""

from __future__ import annotations

from pathlib import Path

import openpyxl
from sqlmodel import Session, select

from monitor.breaches.models import Breach
from monitor.reports.monthly import monthly_report, to_markdown, write_xlsx
from monitor.sla.service import SlaContext
from tests.helpers import make_ticket, review


def test_the_month_counts_tickets_targets_breaches_and_reviews(
    session: Session, ctx: SlaContext, tmp_path: Path
) -> None:
    late = make_ticket(
        session,
        ctx,
        [
            ("reported", "2026-10-01T00:05:00+08:00"),
            ("arrived", "2026-10-01T01:00:00+08:00"),
            ("resolved", "2026-10-01T01:30:00+08:00"),
        ],
        external_id="LATE",
    )
    make_ticket(
        session,
        ctx,
        [
            ("reported", "2026-10-31T23:00:00+08:00"),
            ("acknowledged", "2026-10-31T23:10:00+08:00"),
            ("resolved", "2026-11-01T02:00:00+08:00"),
        ],
        severity="general",
        external_id="OK",
        pool="pool1",
    )
    make_ticket(session, ctx, [("reported", "2026-09-30T23:59:00+08:00")], external_id="SEPT")
    arrival = session.exec(
        select(Breach).where(Breach.target == "arrival", Breach.ticket_id == late.id)
    ).one()
    review(session, ctx, arrival, "confirmed", "", "监理-张工")
    session.commit()

    report = monthly_report(session, ctx, 2026, 10)
    assert report["tickets"]["total"] == 2
    assert report["tickets"]["by_pool"] == {"pool1": {"general": 1}, "pool2": {"major": 1}}
    rows = {(r["pool"], r["target"]): r for r in report["targets"]}
    assert rows[("pool2", "arrival")]["breached"] == 1
    assert rows[("pool1", "resolution")]["met"] == 1
    breaches = {b["target"]: b for b in report["breaches"]}
    assert breaches["arrival"]["review"] == "confirmed"
    assert breaches["arrival"]["reviewer"] == "监理-张工"
    assert report["breach_reviews"]["confirmed"] == 1
    # Every event was entered on 11-28, weeks after October: but not in October itself.
    assert report["late_entries"] == []
    assert any("原始事件" in m for m in report["method"])

    text = to_markdown(report)
    assert "# 监理月报 2026-10" in text and "LATE" in text and "SEPT" not in text
    path = tmp_path / "m.xlsx"
    write_xlsx(report, ctx.tz, path)
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == ["概要", "SLA目标", "超时及审核", "数据质量", "补录事件"]
    assert book["概要"]["B4"].value == 2


def test_late_entries_of_the_month_are_listed(session: Session, ctx: SlaContext) -> None:
    make_ticket(session, ctx, [("reported", "2026-11-20T09:00:00+08:00")], external_id="BD")
    report = monthly_report(session, ctx, 2026, 11)
    assert [(e["ref"], e["type"]) for e in report["late_entries"]] == [("BD", "reported")]
    kinds = {f["kind"] for f in report["findings_opened"]}
    assert "late_entry" in kinds


def test_the_report_names_tickets_by_external_id_in_chinese_and_sets_other_years_apart(
    session: Session, ctx: SlaContext, tmp_path: Path
) -> None:
    # Still open a year on: its overdue finding opens this month, about a 2025 ticket.
    make_ticket(session, ctx, [("reported", "2025-10-01T09:00:00+08:00")], external_id="OLD-1")
    make_ticket(
        session,
        ctx,
        [
            ("reported", "2026-11-02T09:00:00+08:00"),
            ("arrived", "2026-11-02T10:00:00+08:00"),
            ("resolved", "2026-11-02T09:30:00+08:00"),
        ],
        external_id="DX-NEW",
    )
    session.commit()
    report = monthly_report(session, ctx, 2026, 11)
    text = to_markdown(report)
    assert "] 工单 " not in text
    own, _, other = text.partition("## 往年工单的数据质量发现")
    assert "DX-NEW" in own and "OLD-1" not in own.split("## 本月新开的数据质量发现")[1]
    assert "OLD-1（2025 年报障）" in other
    assert "| 政务二云 | 重大故障 | 到场 |" in text and "| 政务二云 | 重大故障 | 解决 |" in text
    assert "pool2" not in text and "breached" not in text
    path = tmp_path / "m.xlsx"
    write_xlsx(report, ctx.tz, path)
    book = openpyxl.load_workbook(path)
    sheet = book["数据质量"]
    rows = list(sheet.iter_rows(min_row=2, values_only=True))
    assert rows[-1][:2] == ("本月新开", "2025 年") and rows[-1][3] == "OLD-1"
    assert sheet.freeze_panes == "A2" and sheet.auto_filter.ref
    opened = sheet.cell(row=2, column=7)
    assert opened.is_date and opened.number_format == "yyyy-mm-dd hh:mm:ss"
