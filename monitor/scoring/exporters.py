"""The scoring feed as the evaluators open it: JSON, CSV, or an xlsx with the evaluation
table and an evidence sheet."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

TABLE_HEADERS = ["一级指标", "二级指标", "三级指标", "分值", "评分标准", "评价得分", "评价意见"]
DETAIL_HEADERS = [
    "指标编号",
    "是否最终",
    "范围内工单数",
    "扣分次数",
    "待审核",
    "已确认",
    "已豁免",
    "截至",
]


def to_json(feed: dict[str, Any]) -> str:
    return json.dumps(feed, ensure_ascii=False, indent=2) + "\n"


def _table_row(feed: dict[str, Any], ind: dict[str, Any]) -> list[Any]:
    b = ind["breaches"]
    return [
        ind["level1"],
        ind["level2"],
        ind["name"],
        ind["points"],
        ind["criteria"],
        ind["score"],
        ind["comment"],
        ind["id"],
        "是" if ind["final"] else "否",
        ind["tickets_in_scope"],
        ind["occurrences"],
        b["pending"],
        b["confirmed"],
        b["waived"],
        feed["as_of"],
    ]


def to_csv(feed: dict[str, Any]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(TABLE_HEADERS + DETAIL_HEADERS)
    for ind in feed["indicators"]:
        writer.writerow(_table_row(feed, ind))
    return buf.getvalue()


def write_xlsx(feed: dict[str, Any], path: Path) -> None:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font

    book = Workbook()
    table = book.active
    assert table is not None
    table.title = "评分表"
    table.append(TABLE_HEADERS + DETAIL_HEADERS)
    for ind in feed["indicators"]:
        table.append(_table_row(feed, ind))
    for cell in table[1]:
        cell.font = Font(bold=True)
    for column, width in zip(
        "ABCDEFGHIJKLMNO", (10, 12, 26, 8, 60, 10, 40, 18, 10, 12, 10, 8, 8, 8, 28), strict=True
    ):
        table.column_dimensions[column].width = width
    for row in table.iter_rows(min_row=2):
        for cell in row:
            cell.alignment = Alignment(wrap_text=True, vertical="top")

    sheet = book.create_sheet("佐证")
    sheet.append(
        [
            "指标编号",
            "工单",
            "外部单号",
            "资源池",
            "严重程度",
            "标题",
            "报障时间",
            "是否扣分",
            "类别",
            "目标/事件",
            "状态/类型",
            "时间",
            "截止",
            "登记时间",
            "审核/来源",
            "说明",
        ]
    )
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for ind in feed["indicators"]:
        for ev in ind["evidence"]:
            head = [
                ind["id"],
                ev["ticket"],
                ev["external_id"],
                ev["pool"],
                ev["severity"],
                ev["title"],
                ev["reported_at"],
                "是" if ev["occurrence"] else "否",
            ]
            for t in ev["targets"]:
                sheet.append(
                    [
                        *head,
                        "目标",
                        t["id"],
                        t["status"],
                        t["stop"],
                        t["deadline"],
                        None,
                        None,
                        None,
                    ]
                )
            for b in ev["breaches"]:
                reviews = (
                    "；".join(
                        f"{r['at']} {r['reviewer']} {r['decision']} {r['reason']}"
                        for r in b["reviews"]
                    )
                    or "待审核"
                )
                sheet.append(
                    [
                        *head,
                        "超时",
                        b["target"],
                        b["review"],
                        b["stop"],
                        b["deadline"],
                        None,
                        reviews,
                        b["explain"],
                    ]
                )
            for e in ev["events"]:
                note = "；".join(
                    x
                    for x in (
                        e["note"],
                        ", ".join(map(str, e["evidence"])),
                        f"更正 {e['corrects']}：{e['reason']}" if e["corrects"] else "",
                    )
                    if x
                )
                sheet.append(
                    [
                        *head,
                        "事件",
                        e["id"],
                        e["type"],
                        e["corrected_at"] or e["at"],
                        None,
                        e["recorded_at"],
                        f"{e['actor']}/{e['source']}",
                        note,
                    ]
                )
    book.save(path)
