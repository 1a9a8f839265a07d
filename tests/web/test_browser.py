"""The issue's scenarios, in headless Chromium against a real server (SQLite and PostgreSQL)."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import openpyxl
from playwright.sync_api import expect
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from monitor.breaches.models import Breach
from monitor.breaches.service import reviews_of
from monitor.core.db import read_scope, session_scope
from monitor.sla.service import SlaContext
from monitor.tickets.models import Event, Ticket
from tests.helpers import OPERATOR2, local, make_ticket
from tests.web.conftest import login, screenshot


def _late_major(engine: Engine, ctx: SlaContext, external_id: str = "DX-2026-1128") -> int:
    """A pool2 major fault whose engineer arrived 70 minutes after the report (allowed: 30)."""
    with session_scope(engine) as session:
        ticket = make_ticket(
            session,
            ctx,
            [("reported", local(2026, 11, 28, 9, 0)), ("arrived", local(2026, 11, 28, 10, 10))],
            OPERATOR2,
            external_id=external_id,
            title="政务外网出口中断",
        )
        assert ticket.id is not None
        return ticket.id


def _events(engine: Engine, ticket_id: int) -> list[Event]:
    with read_scope(engine) as session:
        return list(
            session.exec(
                select(Event).where(Event.ticket_id == ticket_id).order_by(col(Event.seq))
            ).all()
        )


def test_operator_logs_in_creates_a_major_ticket_and_adds_its_events(
    page: Any, people: dict[str, str], engine: Engine
) -> None:
    login(page, "op2-zhang")
    page.click("text=工单")
    page.click("text=＋ 登记故障")
    page.select_option("select[name=severity]", "major")
    page.fill("input[name=title]", "云主机批量宕机")
    page.fill("input[name=external_id]", "DX-2026-0001")
    page.fill("input[name=reported_at]", "2026-11-28 10:00")
    page.select_option("select[name=source]", "monitoring")
    screenshot(page, "ticket-new")
    page.click("form[action='/tickets-new'] button[type=submit]")
    page.wait_for_url(re.compile(r"/tickets/\d+"))
    assert "工单已登记" in page.inner_text("main")
    facts = page.inner_text(".facts")
    assert "政务二云" in facts and "重大故障" in facts and "监控发现" in facts

    for kind, at in (("arrived", "2026-11-28 10:45"), ("resolved", "2026-11-28 11:50")):
        page.select_option("#ev-type", kind)
        page.fill("#ev-at", at)
        page.click("#form-event button[type=submit]")
        page.wait_for_url(re.compile(r"done=event"))
    rows = {
        page.inner_text(f"table.targets tbody tr:nth-child({2 * i + 1}) th"): page.inner_text(
            f"table.targets tbody tr:nth-child({2 * i + 1}) .st"
        )
        for i in range(3)
    }
    assert rows == {"到场": "超时", "解决": "达标", "故障分析报告": "进行中"}
    timeline = page.inner_text(".timeline")
    assert "到场 2026-11-28 10:45:00+08:00" in timeline
    assert timeline.count("op2-zhang（运营单位）") == 3
    screenshot(page, "ticket")

    with read_scope(engine) as session:
        ticket = session.exec(select(Ticket).where(Ticket.external_id == "DX-2026-0001")).one()
    assert ticket.pool == "pool2" and ticket.created_by == "op2-zhang"
    assert [(e.type, e.actor) for e in _events(engine, ticket.id or 0)] == [
        ("reported", "op2-zhang"),
        ("arrived", "op2-zhang"),
        ("resolved", "op2-zhang"),
    ]


def test_supervisor_finds_a_ticket_by_external_id_and_waives_its_breach(
    page: Any, people: dict[str, str], engine: Engine, ctx: SlaContext
) -> None:
    ticket_id = _late_major(engine, ctx)
    login(page, "jianli-wang")
    page.fill("header input[name=q]", "DX-2026-1128")
    page.press("header input[name=q]", "Enter")
    page.wait_for_url(f"**/tickets/{ticket_id}")
    arrival = page.locator("table.targets tbody tr", has_text="到场").first
    assert arrival.locator(".st").inner_text() == "超时"
    assert "计算过程" in page.inner_text("table.targets")

    arrival.locator("a", has_text="待审核").click()
    page.check("input[name=decision][value=waived]")
    page.fill("textarea[name=reason]", "市政数局批准的计划停机，运营单位已提前报备")
    screenshot(page, "breach")
    page.click("form.review button[type=submit]")
    page.wait_for_url(re.compile(r"done=1"))
    history = page.inner_text("table.list")
    assert "jianli-wang" in history and "已豁免" in history

    with read_scope(engine) as session:
        breach = session.exec(
            select(Breach).where(Breach.ticket_id == ticket_id, Breach.target == "arrival")
        ).one()
        reviews = reviews_of(session, breach.id or 0)
    assert breach.review == "waived"
    assert [(r.reviewer, r.decision, r.reason) for r in reviews] == [
        ("jianli-wang", "waived", "市政数局批准的计划停机，运营单位已提前报备")
    ]


def test_a_bad_time_is_shown_beside_its_field_and_nothing_is_written(
    page: Any, people: dict[str, str], engine: Engine, ctx: SlaContext
) -> None:
    ticket_id = _late_major(engine, ctx)
    before = len(_events(engine, ticket_id))
    login(page, "op2-zhang")
    page.goto(f"/tickets/{ticket_id}")
    page.select_option("#ev-type", "resolved")
    page.fill("#ev-at", "2026-13-45 10:00")
    page.fill("#ev-note", "已更换故障板卡")
    page.click("#form-event button[type=submit]")
    field = page.locator("#form-event .field.bad")
    assert field.count() == 1
    assert field.locator("input").get_attribute("name") == "at"
    assert "2022-08-10 11:41" in field.locator(".err").inner_text()
    assert page.input_value("#ev-at") == "2026-13-45 10:00"
    assert page.input_value("#ev-note") == "已更换故障板卡"
    assert page.input_value("#ev-type") == "resolved"
    screenshot(page, "ticket-bad-time")
    assert len(_events(engine, ticket_id)) == before


def test_an_operator_cannot_reach_another_pools_ticket_nor_post_without_csrf(
    page: Any, people: dict[str, str], engine: Engine, ctx: SlaContext
) -> None:
    ticket_id = _late_major(engine, ctx)
    login(page, "op1-li")
    answer = page.goto(f"/tickets/{ticket_id}")
    assert answer.status == 404
    assert "政务外网出口中断" not in page.content()
    page.fill("header input[name=q]", "DX-2026-1128")
    page.press("header input[name=q]", "Enter")
    page.wait_for_load_state()
    assert "共 0 张工单" in page.inner_text("main")

    page.context.clear_cookies()
    login(page, "op2-zhang")
    before = len(_events(engine, ticket_id))
    refused = page.request.post(
        f"/tickets/{ticket_id}/events",
        form={"kind": "event", "type": "resolved", "at": "2026-11-28 11:00"},
        max_redirects=0,
    )
    assert refused.status == 403
    assert "安全令牌" in refused.text()
    assert len(_events(engine, ticket_id)) == before


def test_an_evaluator_downloads_the_years_xlsx_and_it_opens(
    page: Any, people: dict[str, str], engine: Engine, ctx: SlaContext
) -> None:
    _late_major(engine, ctx)
    login(page, "pingjia-zhao")
    page.click("nav >> text=年度评分")
    assert "2026 年度评分" in page.inner_text("h1")
    assert "本年度共发生1次重大故障，其中1次故障处理超时。" in page.inner_text("main")
    screenshot(page, "scoring")
    with page.expect_download() as download:
        page.click("text=下载 Excel（含佐证）")
    assert download.value.suggested_filename == "2026年度评分.xlsx"
    book = openpyxl.load_workbook(io.BytesIO(Path(download.value.path()).read_bytes()))
    table = book["评分表"]
    rows = [[c.value for c in row] for row in table.iter_rows()]
    assert rows[1][2] == "系统故障响应或维护及时性" and rows[1][5] == 2
    evidence = "\n".join(
        str(c.value) for sheet in book.worksheets[1:] for row in sheet.iter_rows() for c in row
    )
    assert "DX-2026-1128" in evidence


def test_the_ticket_page_prints_without_menus_and_with_every_explanation(
    page: Any, people: dict[str, str], engine: Engine, ctx: SlaContext
) -> None:
    ticket_id = _late_major(engine, ctx)
    login(page, "jianli-wang")
    page.goto(f"/tickets/{ticket_id}")
    folded = page.locator("tr.explain pre").last  # the report clock has not started: folded
    assert not folded.is_visible()
    page.emulate_media(media="print")
    assert not page.locator("header.top").is_visible()
    assert not page.locator("section.forms").is_visible()
    assert all(pre.is_visible() for pre in page.locator("tr.explain pre").all())
    screenshot(page, "ticket-print")


def test_search_filters_apply_as_soon_as_they_change(
    page: Any, people: dict[str, str], engine: Engine, ctx: SlaContext
) -> None:
    _late_major(engine, ctx, "DX-1")
    with session_scope(engine) as session:
        make_ticket(
            session,
            ctx,
            [("reported", local(2026, 11, 28, 8, 0))],
            OPERATOR2,
            external_id="DX-2",
            severity="general",
            title="政务外网出口抖动",
        )
    login(page, "jianli-wang")
    page.goto("/tickets?q=政务外网")
    assert "共 2 张工单" in page.inner_text("#results")
    page.select_option("select[name=severity]", "general")
    expect(page.locator("#results")).to_contain_text("共 1 张工单")
    assert "DX-2" in page.inner_text("#results") and "DX-1" not in page.inner_text("#results")
    assert "severity=general" in page.url
    screenshot(page, "search")


def test_docs_render_with_the_network_blocked(page: Any, live: str) -> None:
    blocked: list[str] = []

    def only_ours(route: Any) -> None:
        if route.request.url.startswith(live):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    page.context.route("**/*", only_ours)
    page.goto("/docs")
    page.wait_for_selector(".swagger-ui .info .title")
    assert "SLA Monitor" in page.inner_text(".swagger-ui .info .title")
    assert page.locator(".opblock").count() > 5
    screenshot(page, "docs")
    page.goto("/redoc")
    page.wait_for_selector("h1:has-text('SLA Monitor')")
    assert blocked == []
