"""Tokens can be listed, revoked (refused at once, audited) and given an expiry."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from monitor.audit.models import AuditRecord
from monitor.auth.models import ApiToken
from monitor.core.clock import FixedClock
from tests.test_cli import env, invoke

__all__ = ["env"]  # the CLI's database fixture
API = "/api/v1/tickets"


def test_a_revoked_token_is_refused_at_once_and_the_revocation_audited(
    env: str, client: TestClient, engine: Engine
) -> None:
    code, out, _ = invoke("token", "create", "--role", "supervisor", "--name", "监理-张工")
    assert code == 0
    value = out.split()[-1]
    headers = {"Authorization": f"Bearer {value}"}
    assert client.get(API, headers=headers).status_code == 200
    code, listed, _ = invoke("token", "list")
    assert code == 0 and "监理-张工" in listed and "active" in listed and value not in listed
    token_id = listed.split()[0]
    code, out, _ = invoke("token", "revoke", token_id, "--as", "市政数局-王")
    assert code == 0 and "revoked" in out
    assert client.get(API, headers=headers).status_code == 401
    assert "revoked" in invoke("token", "list")[1]
    code, _, err = invoke("token", "revoke", token_id)
    assert code == 1 and "already revoked" in err
    with Session(engine) as s:
        record = s.exec(select(AuditRecord).where(AuditRecord.action == "token.revoked")).one()
        assert record.actor == "市政数局-王"


def test_an_expired_token_is_refused(
    env: str, client: TestClient, engine: Engine, clock: FixedClock
) -> None:
    until = "2099-06-30T00:00:00+08:00"  # the command checks it against the real clock
    code, out, _ = invoke("token", "create", "--role", "evaluator", "--expires", until)
    assert code == 0 and "valid until" in out
    headers = {"Authorization": f"Bearer {out.split()[-1]}"}
    assert client.get(API, headers=headers).status_code == 200
    expiry = datetime(2099, 6, 30, tzinfo=ZoneInfo("Asia/Shanghai"))
    clock.at = expiry - timedelta(seconds=1)  # to the second: the stored instant read exactly
    assert client.get(API, headers=headers).status_code == 200
    clock.at = expiry + timedelta(seconds=1)
    assert client.get(API, headers=headers).status_code == 401
    with Session(engine) as s:
        assert s.exec(select(ApiToken)).one().expires_at is not None
    code, _, err = invoke("token", "create", "--role", "evaluator", "--expires", "2020-01-01T00:00")
    assert code == 1 and "future" in err
