"""通知 page: the supervision unit and admins see failed notices; an admin resends one."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from monitor.core.clock import FixedClock
from monitor.core.db import session_scope
from monitor.notifications.models import Delivery, DeliveryStatus, Notice, NoticeKind
from tests.web.test_pages import csrf_of, log_in


def failed_notice(engine: Engine, clock: FixedClock) -> int:
    with session_scope(engine) as session:
        notice = Notice(
            key="calendar_missing:2099",
            kind=NoticeKind.CALENDAR_MISSING,
            title="2099 年的国务院节假日安排尚未载入",
            detail="请载入",
            created_at=clock.now(),
        )
        session.add(notice)
        session.flush()
        assert notice.id is not None
        session.add(
            Delivery(
                notice_id=notice.id,
                channel="admins",
                endpoint="e1",
                endpoint_label="企业微信群机器人",
                status=DeliveryStatus.FAILED,
                attempts=8,
                last_error="连接被拒绝",
                created_at=clock.now(),
            )
        )
        return notice.id


def test_failed_notices_are_shown_and_an_admin_resends_them(
    client: TestClient, people: dict[str, str], engine: Engine, clock: FixedClock
) -> None:
    notice_id = failed_notice(engine, clock)
    log_in(client, "jianli-wang")
    page = client.get("/notifications?failed=true")
    assert page.status_code == 200
    assert "2099 年的国务院节假日安排尚未载入" in page.text and "连接被拒绝" in page.text
    assert ">立即重发</button>" not in page.text  # the supervisor sees, the admin resends
    client.post("/logout", data={"csrf_token": csrf_of(client, "/notifications")})
    log_in(client, "admin-chen")
    token = csrf_of(client, "/notifications?failed=true")
    refused = client.post(f"/notifications/{notice_id}/retry", data={})
    assert refused.status_code in (400, 403)
    sent = client.post(
        f"/notifications/{notice_id}/retry", data={"csrf_token": token}, follow_redirects=False
    )
    assert sent.status_code == 303
    with Session(engine) as s:
        mine = s.exec(select(Delivery).where(Delivery.notice_id == notice_id)).one()
        assert (mine.status, mine.attempts) == ("pending", 0)
    assert "没有发送失败的通知" in client.get("/notifications?failed=true").text


def test_operators_do_not_see_notices(client: TestClient, people: dict[str, str]) -> None:
    log_in(client, "op2-zhang")
    assert client.get("/notifications").status_code == 403
