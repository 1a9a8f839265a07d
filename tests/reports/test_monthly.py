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
    write_xlsx(report, path)
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == ["概要", "SLA目标", "超时及审核", "数据质量", "补录事件"]
    assert book["概要"]["B3"].value == 2


def test_late_entries_of_the_month_are_listed(session: Session, ctx: SlaContext) -> None:
    make_ticket(session, ctx, [("reported", "2026-11-20T09:00:00+08:00")], external_id="BD")
    report = monthly_report(session, ctx, 2026, 11)
    assert [(e["ref"], e["type"]) for e in report["late_entries"]] == [("BD", "reported")]
    kinds = {f["kind"] for f in report["findings_opened"]}
    assert "late_entry" in kinds
