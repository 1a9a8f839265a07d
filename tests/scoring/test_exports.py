"""The score as people open it: Excel on Chinese Windows, and downloads over HTTP."""

from __future__ import annotations

import io
import json
from datetime import datetime
from typing import Any
from urllib.parse import unquote

import openpyxl
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from sqlmodel import Session

from monitor.core.db import session_scope
from monitor.scoring.exporters import to_csv, to_json
from monitor.scoring.feed import scoring_feed
from monitor.sla.service import SlaContext, load_context
from tests.helpers import make_ticket
from tests.scoring.test_feed import major


def test_the_xlsx_has_local_date_cells_chinese_labels_frozen_filtered_headers(
    session: Session, ctx: SlaContext
) -> None:
    from monitor.scoring.exporters import xlsx_bytes
    from monitor.sla.words import words

    major(session, ctx, "DX-1", "2022-03-01", late=True, pool="pool2")
    feed = scoring_feed(session, ctx, 2022).model_dump(mode="json")
    book = openpyxl.load_workbook(io.BytesIO(xlsx_bytes(feed, words(ctx), ctx.tz)))
    sheet = book["佐证"]
    header = [c.value for c in sheet[1]]
    assert "报障时间（UTC+08:00）" in header
    assert sheet.freeze_panes == "A2" and sheet.auto_filter.ref == sheet.dimensions
    assert book["评分表"].freeze_panes == "A2"
    rows = [dict(zip(header, r, strict=True)) for r in sheet.iter_rows(min_row=2)]
    first = rows[0]
    reported = first["报障时间（UTC+08:00）"]
    assert reported.value == datetime(2022, 3, 1, 9, 0)  # noqa: DTZ001 - Beijing wall time, not UTC
    assert reported.number_format == "yyyy-mm-dd hh:mm:ss"
    assert (first["资源池"].value, first["资源池代码"].value) == ("政务二云", "pool2")
    assert (first["严重程度"].value, first["严重程度代码"].value) == ("重大故障", "major")
    late = next(r for r in rows if r["类别"].value == "超时")
    assert (late["目标/事件"].value, late["目标/事件代码"].value) == ("解决", "resolution")
    assert (late["状态/审核"].value, late["状态/审核代码"].value) == ("待审核", "pending")
    events = {r["状态/审核"].value for r in rows if r["类别"].value == "事件"}
    assert {"报障", "到场", "解决"} <= events
    assert sheet.column_dimensions["H"].width > 10  # 标题 fits


def test_the_csv_starts_with_a_bom_and_can_be_gb18030(session: Session, ctx: SlaContext) -> None:
    major(session, ctx, "A", "2022-03-01")
    feed = scoring_feed(session, ctx, 2022).model_dump(mode="json")
    assert to_csv(feed).startswith("\ufeff一级指标".encode())
    assert to_csv(feed, "gb18030").decode("gb18030").startswith("一级指标")


def _disposition_name(response: Any) -> str:
    value = response.headers["content-disposition"]
    return unquote(value.split("filename*=UTF-8''")[1])


def test_score_and_monthly_report_download_over_http(
    client: TestClient, auth: dict[str, Any], app: Any
) -> None:
    state = app.state.monitor
    with session_scope(state.engine) as session:
        ctx = load_context(session, state.settings, state.clock)
        make_ticket(
            session,
            ctx,
            [("reported", "2022-08-10T11:41:00+08:00"), ("arrived", "2022-08-10T13:00:00+08:00")],
            external_id="DX-2022-0810",
        )
    who = auth["evaluator"]
    answer = client.get("/api/v1/scoring/2022", params={"format": "xlsx"}, headers=who)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/vnd.openxmlformats")
    assert _disposition_name(answer) == "2022年度评分.xlsx"
    book = openpyxl.load_workbook(io.BytesIO(answer.content))
    assert book.sheetnames == ["评分表", "佐证"]
    answer = client.get("/api/v1/scoring/2022?format=csv", headers=who)
    assert answer.content.startswith(b"\xef\xbb\xbf") and _disposition_name(answer).endswith(
        "年度评分.csv"
    )
    assert client.get("/api/v1/scoring/2022", headers=who).json()["year"] == 2022
    sup = auth["supervisor"]
    answer = client.get("/api/v1/reports/monthly/2022-08?format=xlsx", headers=sup)
    assert answer.status_code == 200, answer.text
    assert _disposition_name(answer) == "2022年08月监理月报.xlsx"
    refs = [
        r[0]
        for r in openpyxl.load_workbook(io.BytesIO(answer.content))["超时及审核"].iter_rows(
            min_row=2, values_only=True
        )
    ]
    assert refs and set(refs) == {"DX-2022-0810"}
    assert client.get("/api/v1/reports/monthly/2022-08", headers=auth["op2"]).status_code == 403
    assert client.get("/api/v1/reports/monthly/2022-13", headers=sup).status_code == 422


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(st.dictionaries(st.text(), JSON_VALUES, max_size=4))
def test_the_json_file_is_written_as_the_standard_library_writes_it(feed: dict[str, Any]) -> None:
    assert to_json(feed) == json.dumps(feed, ensure_ascii=False, indent=2) + "\n"
