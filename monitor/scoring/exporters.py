"""The scoring feed as the evaluators open it: JSON, CSV (with a BOM for Excel), or an xlsx
with the evaluation table and an evidence sheet in Chinese, times as real local date-times."""

from __future__ import annotations

import json
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

import pydantic_core

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
from monitor.sla.words import Words

TABLE_HEADERS = ["一级指标", "二级指标", "三级指标", "分值", "评分标准", "评价得分", "评价意见"]
DETAIL_HEADERS = [
    "指标编号",
    "是否最终",
    "未最终原因",
    "范围内工单数",
    "扣分次数",
    "待审核",
    "已确认",
    "已豁免",
    "截至",
]
FORMATS = ("json", "csv", "xlsx")


def to_json(feed: dict[str, Any]) -> str:
    """Indented UTF-8 JSON, exactly as `json.dumps(indent=2, ensure_ascii=False)` writes it.
    The standard library indents in pure Python (about 0.4 s for a year of 2,000 faults);
    pydantic-core indents by the same rules in a tenth of that. Where the two write a value
    differently (a number with an exponent, NaN, a text it cannot encode) their compact forms
    differ too, and the standard library writes the file."""
    compact = json.dumps(feed, ensure_ascii=False, separators=(",", ":"))  # the C encoder
    try:
        if pydantic_core.to_json(feed).decode() == compact:
            return pydantic_core.to_json(feed, indent=2).decode() + "\n"
    except pydantic_core.PydanticSerializationError:
        pass
    return json.dumps(feed, ensure_ascii=False, indent=2) + "\n"


def _table_row(feed: dict[str, Any], ind: dict[str, Any], as_of: Any) -> list[Any]:
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
        "；".join(r["text"] for r in ind.get("not_final", [])),
        ind["tickets_in_scope"],
        ind["occurrences"],
        b["pending"],
        b["confirmed"],
        b["waived"],
        as_of,
    ]


def to_csv(feed: dict[str, Any], encoding: str = "utf-8-sig") -> bytes:
    """The evaluation table; UTF-8 with a BOM so Excel on Chinese Windows reads it."""
    rows = [_table_row(feed, ind, feed["as_of"]) for ind in feed["indicators"]]
    return csv_bytes(TABLE_HEADERS + DETAIL_HEADERS, rows, encoding)


EVIDENCE_HEADERS = [
    "指标编号",
    "工单",
    "外部单号",
    "资源池",
    "资源池代码",
    "严重程度",
    "严重程度代码",
    "标题",
    "报障时间",
    "是否扣分",
    "类别",
    "目标/事件",
    "目标/事件代码",
    "状态/审核",
    "状态/审核代码",
    "时间",
    "截止",
    "登记时间",
    "审核记录/登记人",
    "说明",
]


def _evidence_rows(feed: dict[str, Any], w: Words, tz: tzinfo) -> list[list[Any]]:
    rows: list[list[Any]] = []
    for ind in feed["indicators"]:
        for ev in ind["evidence"]:
            head = [
                ind["id"],
                ev["ticket"],
                ev["external_id"],
                w.pool_label(ev["pool"]),
                ev["pool"],
                w.severity_label(ev["severity"]),
                ev["severity"],
                ev["title"],
                local(ev["reported_at"], tz),
                "是" if ev["occurrence"] else "否",
            ]
            for t in ev["targets"]:
                rows.append(
                    [
                        *head,
                        "目标",
                        t["name"],
                        t["id"],
                        w.status_label(t["status"]),
                        t["status"],
                        local(t["stop"], tz),
                        local(t["deadline"], tz),
                        None,
                        None,
                        None,
                    ]
                )
            for b in ev["breaches"]:
                reviews = "；".join(
                    f"{_shown(r['at'], tz)} {r['reviewer']} {w.review_label(r['decision'])} "
                    f"{r['reason']}".strip()
                    for r in b["reviews"]
                )
                rows.append(
                    [
                        *head,
                        "超时",
                        b["name"],
                        b["target"],
                        w.review_label(b["review"]),
                        b["review"],
                        local(b["stop"], tz),
                        local(b["deadline"], tz),
                        None,
                        reviews or "待审核",
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
                rows.append(
                    [
                        *head,
                        "事件",
                        e["id"],
                        e["id"],
                        w.event_label(e["type"]),
                        e["type"],
                        local(e["corrected_at"] or e["at"], tz),
                        None,
                        local(e["recorded_at"], tz),
                        f"{e['actor']}/{e['source']}",
                        note,
                    ]
                )
    return rows


def _shown(value: str | None, tz: tzinfo) -> str:
    at = local(value, tz)
    return at.strftime("%Y-%m-%d %H:%M") if at else ""


def xlsx_bytes(feed: dict[str, Any], w: Words, tz: tzinfo) -> bytes:
    """The evaluators' table (评分表) and every ticket in scope (佐证), for Excel."""
    as_of = datetime.fromisoformat(feed["as_of"])
    zone = offset_label(tz, as_of)
    book = new_book()
    detail = [h if h != "截至" else f"截至（{zone}）" for h in DETAIL_HEADERS]
    add_sheet(
        book,
        "评分表",
        TABLE_HEADERS + detail,
        [_table_row(feed, ind, local(as_of, tz)) for ind in feed["indicators"]],
    )
    headers = [
        f"{h}（{zone}）" if h in ("报障时间", "时间", "截止", "登记时间") else h
        for h in EVIDENCE_HEADERS
    ]
    add_sheet(book, "佐证", headers, _evidence_rows(feed, w, tz))
    return book_bytes(book)


def write_xlsx(feed: dict[str, Any], w: Words, tz: tzinfo, path: Path) -> None:
    path.write_bytes(xlsx_bytes(feed, w, tz))


def score_download(
    feed: dict[str, Any], fmt: str, w: Words, tz: tzinfo, encoding: str = "utf-8-sig"
) -> Download:
    """The score as a file for a person, named e.g. 2022年度评分.xlsx."""
    name = f"{feed['year']}年度评分.{fmt}"
    if fmt == "xlsx":
        return Download(xlsx_bytes(feed, w, tz), name, MEDIA_TYPES["xlsx"])
    if fmt == "csv":
        return Download(to_csv(feed, encoding), name, MEDIA_TYPES["csv"])
    return Download(to_json(feed).encode(), name, MEDIA_TYPES["json"])
