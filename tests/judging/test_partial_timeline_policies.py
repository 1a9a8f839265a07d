"""The partial timeline against a policy whose clocks start and stop on every kind the rules
allow: resolutions as stops, pausable clocks, working days, starts after acknowledgement."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlmodel import Session

from monitor.core.settings import Settings
from monitor.sla.service import SlaContext
from tests.conftest import CONFIG
from tests.judging.test_partial_timeline import KINDS, SEVERITIES, append_each, examples

POLICY = """
policies:
  - version: every-kind-2019
    effective_from: 2019-01-01
    severities:
      major:
        name: 重大
        targets:
          - {id: a, name: 甲, start: reported, stop: verified, duration: 2h, pausable: true}
          - {id: b, name: 乙, start: resolved, stop: verified, duration: 10h, pausable: true}
          - {id: c, name: 丙, start: verified, stop: report_submitted, duration: 3d,
             calendar: cn_workdays}
          - {id: d, name: 丁, start: acknowledged, stop: arrived, duration: 1h, pausable: true}
          - {id: e, name: 戊, start: arrived, stop: resolved, duration: 3h}
          - {id: f, name: 己, start: user_notified, stop: acknowledged, duration: 1h}
          - {id: g, name: 庚, start: report_submitted, stop: resolved, duration: 2h,
             pausable: true}
      significant:
        name: 较大
        targets:
          - {id: x, name: 辛, start: resolved, stop: user_notified, duration: 5h, pausable: true}
          - {id: y, name: 壬, start: verified, stop: resolved, duration: 4h}
      general:
        name: 一般
        targets:
          - {id: z, name: 癸, start: verified, stop: acknowledged, duration: 5h, pausable: true}
      anomaly:
        name: 异常
        targets:
          - {id: w, name: 子, start: acknowledged, stop: verified, duration: 4h, pausable: true}
"""


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    config = tmp_path / "config"
    shutil.copytree(CONFIG, config)
    (config / "sla.yaml").write_text(POLICY, encoding="utf-8")
    return Settings(database_url=db_url, config_dir=config, evidence_dir=tmp_path / "evidence")


event = st.fixed_dictionaries(
    {
        # Pauses and the kinds clocks start and stop on come often; half-hour steps over six
        # hours put many events at one instant.
        "type": st.sampled_from(
            KINDS
            + ("resolved", "reopened", "verified", "report_submitted") * 3
            + ("paused", "resumed") * 3
            + ("acknowledged", "arrived", "user_notified") * 2
        ),
        "step": st.integers(min_value=0, max_value=12),
        "severity": st.sampled_from(SEVERITIES),
        "evidence": st.sampled_from((False, False, True)),
    }
)


@examples(40)
@given(st.sampled_from(SEVERITIES), st.lists(event, min_size=1, max_size=20))
def test_every_kind_of_clock_judged_by_part_of_the_timeline_as_by_the_whole(
    session: Session, ctx: SlaContext, severity: str, events: list[dict[str, Any]]
) -> None:
    assert list(ctx.policies.by_version) == ["every-kind-2019"]
    append_each(session, ctx, severity, events, step=timedelta(minutes=30))
