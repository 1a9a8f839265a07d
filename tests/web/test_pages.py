"""The pages without a browser: login and its limits, roles, forms that refuse bad input."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from monitor.core.clock import FixedClock
from monitor.core.db import read_scope, session_scope
from monitor.core.settings import Settings
from monitor.sla.service import SlaContext
from monitor.tickets import search
from monitor.tickets.models import Ticket
from tests.helpers import ADMIN, OPERATOR2, local, make_ticket, while_an_import_runs
from tests.web.conftest import PASSWORD

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def log_in(client: TestClient, name: str, password: str = PASSWORD, **headers: str) -> object:
    form = client.get("/login")
    token = CSRF.search(form.text).group(1)  # type: ignore[union-attr]
    return client.post(
        "/login",
        data={"username": name, "password": password, "csrf_token": token, "next": "/tickets"},
        headers=headers,
        follow_redirects=False,
    )


def csrf_of(client: TestClient, path: str) -> str:
    return CSRF.search(client.get(path).text).group(1)  # type: ignore[union-attr]


def test_a_page_asks_for_login_and_comes_back_after_it(
    client: TestClient, people: dict[str, str]
) -> None:
    answer = client.get("/tickets?q=DX", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=%2Ftickets%3Fq%3DDX"
    login = client.get(answer.headers["location"])
    assert 'name="username"' in login.text and 'name="password"' in login.text
    assert 'value="/tickets?q=DX"' in login.text


def test_the_session_cookie_is_httponly_lax_and_secure_behind_tls(
    client: TestClient, people: dict[str, str]
) -> None:
    plain = log_in(client, "jianli-wang")
    assert plain.status_code == 303  # type: ignore[attr-defined]
    cookie = plain.headers["set-cookie"]  # type: ignore[attr-defined]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    client.cookies.clear()
    tls = log_in(client, "jianli-wang", **{"X-Forwarded-Proto": "https"})
    assert "Secure" in tls.headers["set-cookie"]  # type: ignore[attr-defined]


def test_wrong_passwords_lock_the_name_for_a_while(
    client: TestClient, people: dict[str, str], clock: FixedClock
) -> None:
    wrong = log_in(client, "jianli-wang", "not the password")
    assert wrong.status_code == 401  # type: ignore[attr-defined]
    assert "用户名或密码不正确" in wrong.text  # type: ignore[attr-defined]
    for _ in range(4):
        answer = log_in(client, "jianli-wang", "not the password")
    assert "已暂时锁定" in answer.text  # type: ignore[attr-defined]
    still = log_in(client, "jianli-wang")
    assert still.status_code == 401 and "已暂时锁定" in still.text  # type: ignore[attr-defined]
    clock.advance(timedelta(minutes=16))
    assert log_in(client, "jianli-wang").status_code == 303  # type: ignore[attr-defined]


def test_login_refuses_a_form_from_elsewhere_and_a_redirect_off_site(
    client: TestClient, people: dict[str, str]
) -> None:
    forged = client.post(
        "/login",
        data={"username": "jianli-wang", "password": PASSWORD, "csrf_token": "x"},
        follow_redirects=False,
    )
    assert forged.status_code == 403
    assert "slamon_session" not in forged.headers.get("set-cookie", "")
    token = csrf_of(client, "/login")
    answer = client.post(
        "/login",
        data={
            "username": "jianli-wang",
            "password": PASSWORD,
            "csrf_token": token,
            "next": "//evil.example/",
        },
        follow_redirects=False,
    )
    assert answer.headers["location"] == "/"


def test_logout_ends_the_session(client: TestClient, people: dict[str, str]) -> None:
    log_in(client, "jianli-wang")
    cookie = client.cookies.get("slamon_session")
    token = csrf_of(client, "/tickets")
    assert (
        client.post("/logout", data={"csrf_token": token}, follow_redirects=False).status_code
        == 303
    )
    client.cookies.set("slamon_session", cookie or "")
    assert client.get("/tickets", follow_redirects=False).status_code == 303


def test_each_role_sees_only_its_pages(client: TestClient, people: dict[str, str]) -> None:
    log_in(client, "pingjia-zhao")
    page = client.get("/scoring")  # this year, not yet over
    assert page.status_code == 200 and "非最终原因" in page.text and "评价年度尚未结束" in page.text
    refused = client.get("/accounts")
    assert refused.status_code == 403 and "没有权限" in refused.text
    assert "账号" not in client.get("/").text.split("</nav>")[0]
    client.cookies.clear()
    log_in(client, "op2-zhang")
    assert client.get("/scoring").status_code == 403
    assert client.get("/calendar").status_code == 403
    assert client.get("/findings").status_code == 200


def test_search_finds_chinese_words_and_keeps_operators_in_their_pool(
    client: TestClient, people: dict[str, str], engine: Engine, ctx: SlaContext
) -> None:
    with session_scope(engine) as session:
        for i, (pool, title) in enumerate(
            [
                ("pool2", "政务外网出口中断"),
                ("pool2", "数据库主备切换失败"),
                ("pool1", "外网出口拥塞"),
            ]
        ):
            make_ticket(
                session,
                ctx,
                [("reported", local(2026, 11, 28, 9, i))],
                OPERATOR2 if pool == "pool2" else ADMIN,
                pool=pool,
                external_id=f"EX-{i}",
                title=title,
            )
    log_in(client, "jianli-wang")
    page = client.get("/tickets", params={"q": "出口"})
    assert (
        "共 2 张工单" in page.text
        and "政务外网出口中断" in page.text
        and "外网出口拥塞" in page.text
    )
    filtered = client.get("/tickets", params={"q": "出口", "pool": "pool1"})
    assert "共 1 张工单" in filtered.text and "政务外网出口中断" not in filtered.text
    with pytest.MonkeyPatch.context() as patch:  # past the cap the total is a lower bound
        patch.setattr(search, "COUNT_CAP", 1)
        capped = client.get("/tickets", params={"q": "出口"})
        assert "共 1+ 张工单" in capped.text and "超过 1 张不再逐一计数" in capped.text
    bad = client.get("/tickets", params={"date_from": "2026-02-30"})
    assert bad.status_code == 422 and 'id="date_from-err"' in bad.text
    client.cookies.clear()
    log_in(client, "op2-zhang")
    mine = client.get("/tickets", params={"q": "出口"})
    assert "共 1 张工单" in mine.text and "外网出口拥塞" not in mine.text
    other_pool = client.get("/tickets", params={"q": "EX-2"}, follow_redirects=False)
    assert other_pool.status_code == 200 and "共 0 张工单" in other_pool.text


def test_a_duplicate_external_id_is_refused_beside_its_field(
    client: TestClient, people: dict[str, str], engine: Engine, ctx: SlaContext
) -> None:
    with session_scope(engine) as session:
        make_ticket(session, ctx, [("reported", local(2026, 11, 28, 9, 0))], OPERATOR2)
    log_in(client, "op2-zhang")
    token = csrf_of(client, "/tickets-new")
    answer = client.post(
        "/tickets-new",
        data={
            "csrf_token": token,
            "pool": "pool2",
            "external_id": "EX-0001",
            "severity": "major",
            "source": "user_report",
            "title": "重复的单号",
            "reported_at": "2026-11-28 10:00",
        },
    )
    assert answer.status_code == 422
    assert re.search(r'id="external_id-err"[^>]*>该资源池已有此外部单号的工单', answer.text)
    assert 'value="重复的单号"' in answer.text
    with read_scope(engine) as session:
        assert len(session.exec(select(Ticket)).all()) == 1


def test_an_admin_manages_accounts_and_tokens(
    client: TestClient, people: dict[str, str], engine: Engine
) -> None:
    log_in(client, "admin-chen")
    token = csrf_of(client, "/accounts")
    short = client.post(
        "/accounts/users",
        data={
            "csrf_token": token,
            "name": "new-op",
            "role": "operator",
            "pool": "pool1",
            "password": "short",
            "password2": "short",
        },
    )
    assert short.status_code == 422 and "密码至少 12 个字符" in short.text
    created = client.post(
        "/accounts/tokens",
        data={
            "csrf_token": token,
            "token_name": "电信工单系统",
            "token_role": "operator",
            "token_pool": "pool2",
        },
    )
    secret = re.search(r'<code id="new-token">(slm_[^<]+)</code>', created.text).group(1)  # type: ignore[union-attr]
    api = {"Authorization": f"Bearer {secret}"}
    assert client.get("/api/v1/tickets", headers=api).status_code == 200
    prefix = secret.split("_")[1]
    client.post(f"/accounts/tokens/{prefix}/revoke", data={"csrf_token": token})
    assert client.get("/api/v1/tickets", headers=api).status_code == 401

    other = TestClient(client.app)
    assert log_in(other, "op1-li").status_code == 303  # type: ignore[attr-defined]
    client.post("/accounts/users/op1-li/disabled", data={"csrf_token": token, "disabled": "1"})
    assert other.get("/tickets", follow_redirects=False).status_code == 303
    assert log_in(other, "op1-li").status_code == 401  # type: ignore[attr-defined]


def test_an_admin_loads_a_years_calendar(client: TestClient, people: dict[str, str]) -> None:
    log_in(client, "admin-chen")
    assert "系统尚不知道 2027 年" in client.get("/calendar?year=2027").text
    token = csrf_of(client, "/calendar")
    bad = client.post(
        "/calendar",
        data={"csrf_token": token},
        files={
            "file": (
                "2027.yaml",
                b"years:\n  2027:\n    workdays:\n      - {name: x, date: 2027-01-04}\n",
            )
        },
    )
    assert bad.status_code == 422 and 'id="file-err"' in bad.text
    good = client.post(
        "/calendar",
        data={"csrf_token": token},
        files={
            "file": (
                "2027.yaml",
                "years:\n  2027:\n    source: 国务院办公厅通知\n    holidays:\n"
                "      - {name: 元旦, date: 2027-01-01}\n".encode(),
            )
        },
    )
    assert good.status_code == 200 and "2027-01-01(周五) 法定节假日（元旦）" in good.text
    assert "国务院办公厅通知" in good.text
    # A file nested 100,000 brackets deep (200 KB, under the size limit) is refused beside
    # its field; loading it crashed the server's process.
    nested = b"years: " + b"[" * 100_000 + b"]" * 100_000
    deep = client.post(
        "/calendar", data={"csrf_token": token}, files={"file": ("deep.yaml", nested)}
    )
    assert deep.status_code == 422 and 'id="file-err"' in deep.text
    assert "文件嵌套过深" in deep.text
    assert "2027-01-01(周五) 法定节假日（元旦）" in client.get("/calendar?year=2027").text


def test_a_form_posted_while_an_import_holds_the_writers_gets_a_chinese_busy_page(
    people: dict[str, str], db_url: str, settings: Settings, clock: FixedClock
) -> None:
    """An operator's new ticket, posted while an import holds the creation of tickets (on
    SQLite its write lock), waits the busy timeout and is then answered in Chinese with
    503, nothing saved, instead of the API's English JSON or a wait without end."""
    from monitor.api.app import create_app
    from monitor.core.db import make_engine

    engine = make_engine(db_url, busy_seconds=0.3)
    with TestClient(create_app(settings, clock=clock, engine=engine)) as client:
        log_in(client, "op2-zhang")
        token = csrf_of(client, "/tickets-new")
        form = {
            "csrf_token": token,
            "pool": "pool2",
            "external_id": "WEB-BUSY-1",
            "severity": "major",
            "source": "user_report",
            "title": "导入期间新建",
            "reported_at": "2026-11-28 10:00",
        }
        busy = while_an_import_runs(db_url, lambda: client.post("/tickets-new", data=form))
        assert busy.status_code == 503 and busy.headers["Retry-After"] == "5", busy.text
        assert "系统繁忙" in busy.text and "没有保存" in busy.text
        with read_scope(engine) as session:
            assert (
                session.exec(select(Ticket).where(Ticket.external_id == "WEB-BUSY-1")).all() == []
            )
    engine.dispose()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_form_whose_database_connection_is_lost_gets_a_chinese_page_saying_so(
    people: dict[str, str],
    db_url: str,
    settings: Settings,
    clock: FixedClock,
    pg_engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The server ends a form's connection as its write begins (PostgreSQL restarting): the
    operator reads in Chinese that the connection was lost and to look before submitting
    again (a write's outcome would be unknown), not a 500 nor "nothing saved"; the next
    submission goes through on a new connection."""
    from monitor.api.app import create_app
    from monitor.core.db import make_engine
    from monitor.web import deps

    bound = deps.limit_lock_waits

    def dropped_once(session: Session) -> None:
        if not dropped:
            pid = session.connection().exec_driver_sql("SELECT pg_backend_pid()").scalar()
            with pg_engine.begin() as conn:
                conn.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")
            dropped.append(pid)
        bound(session)

    dropped: list[int] = []
    engine = make_engine(db_url)
    with TestClient(create_app(settings, clock=clock, engine=engine)) as client:
        log_in(client, "op2-zhang")
        form = {
            "csrf_token": csrf_of(client, "/tickets-new"),
            "pool": "pool2",
            "external_id": "WEB-LOST-1",
            "severity": "major",
            "source": "user_report",
            "title": "连接中断时新建",
            "reported_at": "2026-11-28 10:00",
        }
        monkeypatch.setattr(deps, "limit_lock_waits", dropped_once)
        lost = client.post("/tickets-new", data=form)
        assert lost.status_code == 503 and lost.headers["Retry-After"] == "5", lost.text
        assert "数据库连接中断" in lost.text and "先打开相关页面查看" in lost.text
        assert "没有保存" not in lost.text
        again = client.post("/tickets-new", data=form, follow_redirects=False)
        assert again.status_code == 303, again.text
    with read_scope(engine) as session:
        saved = session.exec(select(Ticket).where(Ticket.external_id == "WEB-LOST-1")).all()
        assert len(saved) == 1
    engine.dispose()


def test_the_breach_pages_read_one_page_and_count_the_rest(
    client: TestClient,
    people: dict[str, str],
    engine: Engine,
    settings: Settings,
    clock: FixedClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """违约审核 shows a page of breaches and counts them all; its 审核记录 shows the latest
    decision first; 总览 counts every pending breach and lists the first ten."""
    from monitor.breaches.models import Breach
    from monitor.judging.flow import write_flow
    from monitor.sla.service import load_context
    from monitor.web import reviews

    monkeypatch.setattr(reviews, "PER_PAGE", 4)
    with session_scope(engine) as session:
        ctx = load_context(session, settings, clock)
        for i in range(7):  # each arrives late: one breach each, and more
            make_ticket(
                session,
                ctx,
                [("reported", local(2026, 11, 20, 9, i)), ("arrived", local(2026, 11, 21, 9))],
                OPERATOR2,
                external_id=f"LATE-{i}",
            )
    with session_scope(engine) as session:
        breaches = session.exec(select(Breach).order_by(Breach.id)).all()
        total = len(breaches)
        assert total >= 7
        ctx = load_context(session, settings, clock)
        for k, breach in enumerate(breaches[:2]):  # the second reviewed a day after the first
            clock.advance(timedelta(days=1))
            with write_flow(session, ctx) as flow:
                flow.review(breach, "confirmed", f"第{k + 1}次核实", "jianli-wang")
        reviewed_ids = [b.id for b in breaches[:2]]
    log_in(client, "jianli-wang")
    seen: list[str] = []
    for page in range(1, total):
        text = client.get("/breaches", params={"show": "pending", "page": page}).text
        assert f"待审核违约共 {total - 2} 条" in text
        seen += dict.fromkeys(re.findall(r'href="/breaches/(\d+)"', text))  # (a row's links)
    pending = [str(b.id) for b in breaches[2:]]
    assert seen == pending  # each once, oldest first, across the pages
    done = client.get("/breaches", params={"show": "reviewed"}).text
    assert "已审核违约共 2 条" in done
    order = [int(x) for x in dict.fromkeys(re.findall(r'href="/breaches/(\d+)"', done))]
    assert order == list(reversed(reviewed_ids))
    home = client.get("/").text
    assert f"待审核违约（{total - 2}）" in home
    assert f"查看全部 {total - 2} 条" in home or total - 2 <= 10


def test_the_findings_page_counts_every_kind_and_shows_the_newest(
    client: TestClient,
    people: dict[str, str],
    auth: dict[str, dict[str, str]],
    clock: FixedClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """数据质量 counts each kind by the database and reads only the newest it shows."""
    from monitor.web import findings
    from tests.helpers import ticket_body

    monkeypatch.setattr(findings, "SHOWN", 2)
    ids = []
    for k in range(3):  # each a day after the one before: its findings opened then
        clock.advance(timedelta(days=1))
        made = client.post("/api/v1/tickets", json=ticket_body(f"Q-{k}"), headers=auth["op2"])
        ids.append(made.json()["id"])
    every = client.get("/api/v1/findings", headers=auth["supervisor"]).json()["items"]
    log_in(client, "jianli-wang")
    page = client.get("/findings").text
    assert f"全部（{len(every)}）" in page
    assert f"共 {len(every)} 条，显示最新的 2 条" in page
    # The newest ticket's findings, not the oldest's.
    assert f'href="/tickets/{ids[2]}"' in page and f'href="/tickets/{ids[0]}"' not in page
    kinds = [f["kind"] for f in every]
    kind = max(set(kinds), key=kinds.count)
    assert kinds.count(kind) > 2 and len(set(kinds)) > 1
    of_kind = client.get("/findings", params={"kind": kind}).text
    assert f"共 {kinds.count(kind)} 条，显示最新的 2 条" in of_kind
