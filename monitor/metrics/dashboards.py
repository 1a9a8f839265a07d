"""Grafana dashboards as code (grafana-foundation-sdk, Grafana 11.6): `make dashboards` writes
dashboards/*.json, and a test checks the committed files are what this produces."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import bargauge, stat, table, timeseries
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.builders.dashboard import (
    Dashboard,
    DatasourceVariable,
    QueryVariable,
    Row,
)
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    VariableOption,
    VariableRefresh,
    VariableSort,
)

DS = DataSourceRef(type_val="prometheus", uid="${datasource}")
SCOPE = 'pool=~"$pool",severity=~"$severity"'
TAGS = ["sla-monitor", "generated"]


def query(expr: str, legend: str = "", instant: bool = False, ref: str = "A") -> prom.Dataquery:
    q = prom.Dataquery().expr(expr).datasource(DS).ref_id(ref)
    if legend:
        q = q.legend_format(legend)
    return q.instant() if instant else q.range()


def variables(board: Dashboard) -> Dashboard:
    board = board.with_variable(
        DatasourceVariable("datasource")
        .label("数据源")
        .type("prometheus")
        .current(VariableOption(selected=True, text="Prometheus", value="prometheus"))
    )
    for name, label in (("pool", "资源池"), ("severity", "严重程度")):
        board = board.with_variable(
            QueryVariable(name)
            .label(label)
            .datasource(DS)
            .query(f"label_values(slamon_tickets_open, {name})")
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(VariableSort.ALPHABETICAL_ASC)
            .multi(True)
            .include_all(True)
            .all_value(".*")
            .current(VariableOption(selected=True, text="All", value="$__all"))
        )
    return board


def base(uid: str, title: str, description: str) -> Dashboard:
    board = (
        Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(TAGS)
        .refresh("1m")
        .time("now-7d", "now")
        .timezone("browser")
        .editable()
    )
    return variables(board)


def stat_panel(
    title: str, expr: str, unit: str = "none", legend: str = "", description: str = ""
) -> stat.Panel:
    panel = (
        stat.Panel()
        .title(title)
        .unit(unit)
        .datasource(DS)
        .height(4)
        .span(6)
        .with_target(query(expr, legend, instant=True))
    )
    return panel.description(description) if description else panel


def series(
    title: str, *targets: prom.Dataquery, unit: str = "none", description: str = ""
) -> timeseries.Panel:
    panel = timeseries.Panel().title(title).unit(unit).datasource(DS).height(8).span(12)
    for target in targets:
        panel = panel.with_target(target)
    return panel.description(description) if description else panel


def overview() -> Dashboard:
    return (
        base(
            "slamon-overview",
            "SLA 总览 / SLA overview",
            "Open tickets, clocks at risk, breaches and their review, the year-end score, "
            "open findings.",
        )
        .with_row(Row("现状 / Now"))
        .with_panel(stat_panel("未解决工单 Open tickets", f"sum(slamon_tickets_open{{{SCOPE}}})"))
        .with_panel(
            stat_panel(
                "即将超时 At risk now",
                f'sum(slamon_sla_targets{{status="at_risk",{SCOPE}}}) or vector(0)',
                description="Clocks past their warning line, still running.",
            )
        )
        .with_panel(
            stat_panel(
                "待审核超时 Breaches pending review",
                f'sum(slamon_sla_breaches_total{{review="pending",{SCOPE}}}) or vector(0)',
            )
        )
        .with_panel(stat_panel("未关闭数据质量发现 Open findings", "sum(slamon_findings_open)"))
        .with_row(Row("超时 / Breaches"))
        .with_panel(
            series(
                "超时（按资源池、目标） Breaches by pool and target",
                query(
                    "sum by (pool, target) "
                    f'(slamon_sla_breaches_total{{review!="cleared",{SCOPE}}})',
                    "{{pool}} {{target}}",
                ),
            )
        )
        .with_panel(
            series(
                "超时审核状态 Breaches by review state",
                query(f"sum by (review) (slamon_sla_breaches_total{{{SCOPE}}})", "{{review}}"),
            )
        )
        .with_row(Row("评分与数据质量 / Score and data quality"))
        .with_panel(
            bargauge.Panel()
            .title("指标得分（按年） Indicator score by year")
            .datasource(DS)
            .height(8)
            .span(12)
            .unit("none")
            .min(0)
            .with_target(query("slamon_indicator_score", "{{indicator}} {{year}}", instant=True))
        )
        .with_panel(
            table.Panel()
            .title("未关闭发现（按类别） Open findings by kind")
            .datasource(DS)
            .height(8)
            .span(12)
            .with_target(query("sum by (kind) (slamon_findings_open)", "{{kind}}", instant=True))
        )
    )


def operators() -> Dashboard:
    def quantiles(metric: str) -> list[prom.Dataquery]:
        return [
            query(
                f"histogram_quantile({q}, sum by (le, pool) ({metric}_bucket{{{SCOPE}}}))",
                f"p{int(q * 100)} {{{{pool}}}}",
                ref=ref,
            )
            for q, ref in ((0.5, "A"), (0.9, "B"))
        ]

    return (
        base(
            "slamon-operators",
            "运营单位绩效 / Operator performance",
            "How fast each operator arrives and resolves, and the share of clocks met.",
        )
        .with_row(Row("时长分布 / Durations"))
        .with_panel(
            series("到场时长 Arrival time", *quantiles("slamon_arrival_duration_seconds"), unit="s")
        )
        .with_panel(
            series(
                "解决时长 Resolution time",
                *quantiles("slamon_resolution_duration_seconds"),
                unit="s",
            )
        )
        .with_panel(
            series(
                "响应时长 Response time", *quantiles("slamon_response_duration_seconds"), unit="s"
            )
        )
        .with_panel(
            series(
                "解决时长分布 Resolutions by duration bucket",
                query(
                    f"sum by (le) (slamon_resolution_duration_seconds_bucket{{{SCOPE}}})",
                    "≤ {{le}} s",
                ),
            )
        )
        .with_row(Row("达标率 / Met ratio"))
        .with_panel(
            bargauge.Panel()
            .title("按时完成率 Met ratio by pool and severity")
            .datasource(DS)
            .height(8)
            .span(24)
            .unit("percentunit")
            .min(0)
            .max(1)
            .with_target(
                query(
                    f'sum by (pool, severity) (slamon_sla_targets{{status="met",{SCOPE}}}) / '
                    "sum by (pool, severity) "
                    f'(slamon_sla_targets{{status=~"met|breached",{SCOPE}}})',
                    "{{pool}} {{severity}}",
                    instant=True,
                )
            )
        )
    )


def health() -> Dashboard:
    return (
        base(
            "slamon-health",
            "调度与数据健康 / Scheduler and data health",
            "Is the breach sweep running, who leads, is next year's calendar loaded, are "
            "events entered late.",
        )
        .with_row(Row("调度 / Scheduler"))
        .with_panel(
            stat_panel(
                "距上次巡检 Since last sweep",
                "time() - slamon_sweep_last_success_timestamp_seconds",
                unit="s",
            )
        )
        .with_panel(
            stat_panel(
                "调度主节点 Scheduler leader", "slamon_scheduler_leader", legend="{{holder}}"
            )
        )
        .with_panel(
            stat_panel("日历已知至 Calendar known through", "slamon_calendar_last_known_year")
        )
        .with_panel(
            stat_panel("补录事件 Late entries open", 'sum(slamon_findings_open{kind="late_entry"})')
        )
        .with_row(Row("数据质量 / Data quality"))
        .with_panel(
            series(
                "未关闭发现 Open findings by kind",
                query("sum by (kind) (slamon_findings_open)", "{{kind}}"),
            )
        )
        .with_panel(
            series(
                "巡检新鲜度 Sweep freshness",
                query(
                    "time() - slamon_sweep_last_success_timestamp_seconds",
                    "seconds since last sweep",
                ),
                unit="s",
            )
        )
    )


BOARDS = {
    "sla-overview.json": overview,
    "operator-performance.json": operators,
    "scheduler-health.json": health,
}


def render(name: str) -> str:
    board = BOARDS[name]().build()
    data: dict[str, Any] = json.loads(JSONEncoder(sort_keys=True, indent=2).encode(board))
    # The SDK gives every variable the interval variable's auto-step defaults; Grafana's
    # schema knows them only on interval variables.
    for variable in data.get("templating", {}).get("list", []):
        if variable.get("type") != "interval":
            for key in ("auto", "auto_count", "auto_min"):
                variable.pop(key, None)
    return json.dumps(data, ensure_ascii=False, sort_keys=True, indent=2) + "\n"


def write_all(folder: Path) -> list[Path]:
    written = []
    for name in BOARDS:
        path = folder / name
        path.write_text(render(name), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_all(Path("dashboards")):
        print(path)
