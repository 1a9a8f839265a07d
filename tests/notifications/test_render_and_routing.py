"""What a notice says (pure), and the routing file: refused when wrong, secrets never in it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from monitor.core.errors import ConfigError
from monitor.notifications.models import Notice
from monitor.notifications.render import render
from monitor.notifications.routing import load_routing
from tests.conftest import CONFIG
from tests.helpers import SH

DEADLINE = datetime(2022, 8, 10, 4, 11, tzinfo=UTC)  # 12:11 Beijing time


def notice(kind: str) -> Notice:
    return Notice(
        key=f"{kind}:17:arrival",
        kind=kind,
        ticket_id=17,
        target="arrival",
        pool="pool2",
        severity="major",
        ticket_ref="DX-2022-0810",
        title="重要业务系统异常",
        pool_name="政务二云 (第二资源池)",
        severity_name="重大故障",
        target_name="到场",
        deadline=DEADLINE,
        since=DEADLINE,
        created_at=DEADLINE,
    )


def test_an_at_risk_notice_says_how_long_is_left_in_beijing_time() -> None:
    message = render(notice("at_risk"), DEADLINE - timedelta(minutes=6), SH, "https://sla.gov.cn/")
    assert message.title == "【即将超时】政务二云 (第二资源池) 重大故障 DX-2022-0810 到场"
    assert message.body.splitlines() == [
        "【即将超时】重要业务系统异常",
        "工单：DX-2022-0810（系统编号 17）",
        "资源池：政务二云 (第二资源池)",
        "严重程度：重大故障",
        "时限：到场",
        "截止时间：2022-08-10 12:11:00+08:00",
        "剩余时间：6分",
        "查看：https://sla.gov.cn/tickets/17",
    ]


def test_a_breach_notice_says_how_late_and_review_due_how_long_it_waited() -> None:
    late = render(notice("breached"), DEADLINE + timedelta(hours=1, seconds=2), SH)
    assert "已超时：1小时2秒" in late.body
    assert "查看" not in late.body  # no SLAMON_PUBLIC_URL, no link
    just = render(notice("breached"), DEADLINE + timedelta(milliseconds=300), SH)
    assert "已超时：刚过截止时间" in just.body
    waiting = render(notice("review_due"), DEADLINE + timedelta(days=3, hours=1), SH)
    assert waiting.title.startswith("【超时待复核】")
    assert "待复核：2022-08-10 12:11:00+08:00 记录超时，已等待 3天1小时" in waiting.body


def write(tmp_path: Path, data: object) -> Path:
    (tmp_path / "notifications.yaml").write_text(yaml.safe_dump(data, allow_unicode=True))
    return tmp_path


def test_a_route_to_an_unknown_channel_or_a_url_in_the_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"routes\[0\]\.channels: no channel 'pool9'"):
        load_routing(write(tmp_path, {"routes": [{"channels": ["pool9"]}]}), "")
    secret = {
        "channels": {"duty": {"name": "值班", "env": "SLAMON_NOTIFY_X", "url": "wecombot://k"}}
    }
    with pytest.raises(ConfigError, match=r"channels\.duty\.url"):
        load_routing(write(tmp_path, secret), "")
    with pytest.raises(ConfigError, match=r"retry\.attempts"):
        load_routing(write(tmp_path, {"retry": {"attempts": 0}}), "")


def test_addresses_come_from_the_environment_and_are_shown_masked() -> None:
    routing = load_routing(
        CONFIG,
        "json://127.0.0.1:9/all",
        {"SLAMON_NOTIFY_POOL2_DUTY": "wecombot://abcdefghijklmnop dingtalk://sec@tok123/"},
    )
    assert routing.channels_for("at_risk", "pool2", "general") == ["default", "pool2-duty"]
    assert routing.channels_for("at_risk", "pool1", "general") == ["default"]  # pool1 unset
    labels = [e.label for e in routing.endpoints["pool2-duty"]]
    assert labels and not any("abcdefghijklmnop" in x or "sec@" in x for x in labels)
    assert routing.file.retry.delay(1) == timedelta(seconds=10)
    assert routing.file.retry.delay(4) == timedelta(seconds=80)
    assert routing.file.retry.delay(30) == timedelta(seconds=600)


def test_the_routing_follows_a_channels_variable_and_its_file_as_they_change(
    tmp_path: Path,
) -> None:
    env = {"SLAMON_NOTIFY_POOL2_DUTY": "json://127.0.0.1:9/a"}

    def urls(config: Path, channel: str) -> list[str]:
        return [e.url for e in load_routing(config, "", env).endpoints.get(channel, [])]

    assert urls(CONFIG, "pool2-duty") == ["json://127.0.0.1:9/a"]
    env["SLAMON_NOTIFY_POOL2_DUTY"] = "json://127.0.0.1:9/b"
    assert urls(CONFIG, "pool2-duty") == ["json://127.0.0.1:9/b"]
    del env["SLAMON_NOTIFY_POOL2_DUTY"]
    assert urls(CONFIG, "pool2-duty") == []
    # A channel added to the file is read at once, its variable with it.
    shipped = yaml.safe_load((CONFIG / "notifications.yaml").read_text(encoding="utf-8"))
    write(tmp_path, shipped)
    assert urls(tmp_path, "night") == []
    shipped["channels"]["night"] = {"name": "夜班", "env": "SLAMON_NOTIFY_NIGHT"}
    env["SLAMON_NOTIFY_NIGHT"] = "json://127.0.0.1:9/night"
    write(tmp_path, shipped)
    assert urls(tmp_path, "night") == ["json://127.0.0.1:9/night"]
