"""A deterministic, realistic demo year (2022) for both pools, including the evaluation
report's 2022-08-10 incident."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session

from monitor.auth.service import create_token
from monitor.judging.flow import WriteFlow
from monitor.sla.service import SlaContext
from monitor.tickets.schemas import TicketIn
from monitor.tickets.service import Actor, count_tickets

YEAR = 2022
SEED = 20220810
COUNTS = {"anomaly": 130, "general": 120, "significant": 40}
# The supervision report recorded six major faults in 2022, one handled too late.
MAJOR_ON_TIME = 5

TITLES = {
    "anomaly": [
        "云主机磁盘使用率超过阈值",
        "物理服务器电源模块告警",
        "存储节点硬盘预警",
        "负载均衡健康检查异常",
        "云主机内存使用率持续偏高",
        "备份任务执行失败",
        "安全组策略同步延迟",
        "监控代理离线",
    ],
    "general": [
        "单台云主机无法远程登录",
        "对象存储上传缓慢",
        "数据库只读实例复制延迟",
        "VPN 连接间歇中断",
        "网站访问偶发超时",
        "云硬盘挂载失败",
        "DNS 解析异常",
    ],
    "significant": [
        "部分单位业务系统访问缓慢",
        "可用区内网络丢包",
        "数据库主备切换后连接异常",
        "政务外网出口带宽拥塞",
        "分布式存储性能下降",
    ],
    "major": [
        "核心交换机故障导致多系统中断",
        "云管平台整体不可用",
        "存储集群故障导致业务中断",
        "数据中心供电异常",
        "重要业务系统异常",
    ],
}
REASONS = ["录入错误，按监控系统记录更正", "时间误填为登记时间，按现场记录更正", "按用户确认单更正"]


@dataclass
class Draft:
    ticket: dict[str, Any]
    recorded: list[datetime]


def _local(rng: random.Random, ctx: SlaContext) -> datetime:
    start = datetime(YEAR, 1, 1, tzinfo=ctx.tz)
    return start + timedelta(minutes=rng.randrange(365 * 24 * 60 - 3 * 24 * 60))


def _systems(rng: random.Random, ctx: SlaContext, pool: str) -> tuple[list[str], list[str]]:
    systems = [s for s in ctx.catalog.systems if s.pool == pool]
    picked = rng.sample(systems, k=min(len(systems), rng.choice((1, 1, 1, 2))))
    return sorted({s.unit for s in picked}), [s.id for s in picked]


def _minutes(rng: random.Random, low: float, high: float) -> timedelta:
    return timedelta(minutes=round(rng.uniform(low, high)))


def _draft(rng: random.Random, ctx: SlaContext, n: int, severity: str, late: bool) -> Draft:
    pool = "pool1" if rng.random() < 0.48 else "pool2"
    reported = _local(rng, ctx)
    events: list[dict[str, Any]] = [{"type": "reported", "at": reported}]
    if severity == "anomaly":
        notice = _minutes(rng, 25 * 60, 40 * 60) if late else _minutes(rng, 10, 20 * 60)
        events.append({"type": "user_notified", "at": reported + notice})
        done = reported + notice + _minutes(rng, 30, 600)
        events.append({"type": "resolved", "at": done})
    else:
        limit = {"general": 8, "significant": 4, "major": 2}[severity] * 60
        late_response = late and rng.random() < 0.3
        ack = _minutes(rng, 31, 90) if late_response else _minutes(rng, 2, 25)
        kind = "arrived" if severity == "major" else "acknowledged"
        events.append({"type": kind, "at": reported + ack})
        fix = (
            _minutes(rng, limit + 5, limit * 3)
            if late and not late_response
            else _minutes(rng, 20, limit * 0.9)
        )
        events.append({"type": "resolved", "at": reported + max(fix, ack + timedelta(minutes=5))})
    resolved_at = events[-1]["at"]
    events.append({"type": "verified", "at": resolved_at + _minutes(rng, 20, 26 * 60)})
    if severity == "major":
        events.append(
            {
                "type": "report_submitted",
                "at": (resolved_at + timedelta(days=rng.choice((1, 2)))).replace(
                    hour=10, minute=30
                ),
            }
        )
    recorded = [e["at"] + _minutes(rng, 1, 30) for e in events]
    # Some operators enter the resolution days later: back-dated entries for the supervisor.
    if rng.random() < 0.06:
        recorded[2] = events[2]["at"] + timedelta(days=rng.randint(3, 12))
    # Most operators attach the restoration record; the rest are what the supervisor chases.
    if rng.random() < 0.85:
        events[2]["evidence"] = [f"恢复记录-{pool}-{n:04d}.png"]
    for i, e in enumerate(events):
        e["id"] = f"e{i + 1}"
        e["at"] = e["at"].isoformat()
    if rng.random() < 0.05:
        wrong = events[1]
        true_time = datetime.fromisoformat(wrong["at"])
        wrong_time = true_time + timedelta(minutes=rng.randint(40, 180))
        wrong["at"] = wrong_time.isoformat()
        events.append(
            {
                "type": "correction",
                "corrects": wrong["id"],
                "at": true_time.isoformat(),
                "reason": rng.choice(REASONS),
                "id": f"e{len(events) + 1}",
            }
        )
        recorded.append(max(recorded) + timedelta(hours=rng.randint(2, 48)))
    units, systems = _systems(rng, ctx, pool)
    prefix = "YY" if pool == "pool1" else "DX"
    ticket = {
        "external_id": f"{prefix}-{YEAR}-{n:04d}",
        "pool": pool,
        "severity": severity,
        "title": rng.choice(TITLES[severity]),
        "source": rng.choice(("monitoring", "monitoring", "user_report", "inspection")),
        "units": units,
        "systems": systems,
        "events": events,
    }
    return Draft(ticket, recorded)


def seed_incident(ctx: SlaContext) -> Draft:
    """The evaluation report's late fault: pool2, reported 2022-08-10 11:41."""
    tz = ctx.tz
    times = {
        "reported": datetime(2022, 8, 10, 11, 41, tzinfo=tz),
        "arrived": datetime(2022, 8, 10, 12, 5, tzinfo=tz),
        "resolved": datetime(2022, 8, 17, 18, 0, tzinfo=tz),
        "verified": datetime(2022, 8, 19, 10, 0, tzinfo=tz),
        "report_submitted": datetime(2022, 8, 29, 10, 0, tzinfo=tz),
    }
    events: list[dict[str, Any]] = [
        {"id": f"e{i + 1}", "type": k, "at": v.isoformat()}
        for i, (k, v) in enumerate(times.items())
    ]
    events[-1]["note"] = "《中山政务二云云平台故障处理报告》"
    events[-1]["evidence"] = ["中山政务二云云平台故障处理报告-20220829.pdf"]
    ticket = {
        "external_id": "DX-2022-0810",
        "pool": "pool2",
        "severity": "major",
        "title": "重要业务系统异常",
        "source": "user_report",
        "description": (
            "08-10 11:41 客服收到重要业务系统出现异常情况；08-17至08-19 客户验证业务已恢复正常。"
        ),
        "units": ["samr", "rsj"],
        "systems": ["samr-supervise", "rsj-social"],
        "events": events,
    }
    recorded = [t + timedelta(minutes=5) for t in times.values()]
    return Draft(ticket, recorded)


def drafts(ctx: SlaContext) -> list[Draft]:
    rng = random.Random(SEED)
    out = [seed_incident(ctx)]
    n = 1
    for severity, count in COUNTS.items():
        for _ in range(count):
            out.append(_draft(rng, ctx, n, severity, late=rng.random() < 0.12))
            n += 1
    for _ in range(MAJOR_ON_TIME):
        out.append(_draft(rng, ctx, n, "major", late=False))
        n += 1
    out.sort(key=lambda d: d.ticket["events"][0]["at"])
    return out


def load_demo(flow: WriteFlow) -> int:
    """Load the demo year into an empty database; returns how many tickets (0 if not empty)."""
    ctx = flow.ctx
    if count_tickets(flow.session):
        return 0
    drafted = drafts(ctx)
    for draft in drafted:
        data = TicketIn.model_validate(draft.ticket)
        pool = data.pool
        operator = ctx.catalog.operator_of(pool)
        actor = Actor(f"{operator.id if operator else pool}-ops", "operator", "operator", pool)
        flow.create_ticket(data, actor, recorded_at=draft.recorded)
    return len(drafted)


DEMO_ACCOUNTS = (
    ("demo-operator-pool1", "operator", "pool1"),
    ("demo-operator-pool2", "operator", "pool2"),
    ("demo-supervisor", "supervisor", None),
    ("demo-admin", "admin", None),
    ("demo-evaluator", "evaluator", None),
)


def demo_users(session: Session, ctx: SlaContext) -> list[str]:
    """One web login per role for trying the UI; passwords are random and shown once."""
    import secrets

    from monitor.auth.service import create_user

    lines = ["demo web accounts (log in at /, shown once):"]
    for name, role, pool in DEMO_ACCOUNTS:
        password = secrets.token_urlsafe(12)
        create_user(
            session,
            name=name,
            password=password,
            role=role,
            pool=pool,
            known_pools=ctx.catalog.pool_ids,
            now=ctx.now(),
            actor="demo",
        )
        lines.append(f"  {name:<22} {password}")
    return lines


def demo_tokens(session: Session, ctx: SlaContext) -> list[str]:
    """One API token per role for trying the demo; shown once, stored hashed like any other."""
    lines = ["demo API tokens (shown once):"]
    for name, role, pool in DEMO_ACCOUNTS:
        _, value = create_token(
            session,
            name=name,
            role=role,
            pool=pool,
            known_pools=ctx.catalog.pool_ids,
            now=ctx.now(),
            actor="demo",
        )
        lines.append(f"  {name:<22} {value}")
    return lines
