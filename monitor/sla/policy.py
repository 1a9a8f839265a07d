"""The SLA policy: severities and their targets, versioned by the date they take effect."""

from __future__ import annotations

import functools
import hashlib
import json
import re
from datetime import date, timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from monitor.core.config_files import load_config
from monitor.sla.vocab import CLOCK_EVENTS

DURATION = re.compile(r"^\s*(\d+)\s*(m|min|h|d)\s*$")
UNIT_SECONDS = {"m": 60, "min": 60, "h": 3600, "d": 86400}
ID = r"^[a-z][a-z0-9_]*$"


@functools.lru_cache(maxsize=256)  # a policy has a few durations, read at every judgement
def parse_duration(text: str) -> tuple[int, str]:
    match = DURATION.match(text)
    if not match:
        raise ValueError(f"duration {text!r} does not parse (write e.g. 30m, 2h, 3d)")
    amount, unit = int(match.group(1)), match.group(2)
    if amount < 1:
        raise ValueError("duration must be positive")
    return amount, "m" if unit == "min" else unit


class Target(BaseModel):
    """One clock: from a start event to a stop event within a duration."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(pattern=ID)
    name: str
    start: str
    stop: str
    duration: str = Field(description="30m, 2h, 24h; with cn_workdays a whole number of days: 3d")
    calendar: Literal["24x7", "cn_workdays"] = "24x7"
    warn_at: float = Field(default=0.8, gt=0, le=1)
    pausable: bool = False

    @field_validator("start", "stop")
    @classmethod
    def _clock_event(cls, value: str) -> str:
        if value not in CLOCK_EVENTS:
            raise ValueError(
                f"{value!r} is not an event a clock can start or stop on "
                f"({', '.join(CLOCK_EVENTS)})"
            )
        return value

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value

    @model_validator(mode="after")
    def _workdays_whole(self) -> Target:
        _, unit = parse_duration(self.duration)
        if self.calendar == "cn_workdays" and unit != "d":
            raise ValueError("duration: a cn_workdays target counts whole working days (e.g. 3d)")
        if self.start == self.stop:
            raise ValueError("stop: a target cannot start and stop on the same event")
        return self

    @property
    def workdays(self) -> int:
        return parse_duration(self.duration)[0]

    @property
    def span(self) -> timedelta:
        amount, unit = parse_duration(self.duration)
        return timedelta(seconds=amount * UNIT_SECONDS[unit])


class Severity(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    targets: list[Target] = Field(min_length=1)

    @field_validator("targets")
    @classmethod
    def _unique(cls, targets: list[Target]) -> list[Target]:
        ids = [t.id for t in targets]
        if len(ids) != len(set(ids)):
            raise ValueError("target ids must be unique within a severity")
        return targets


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    version: str = Field(min_length=1)
    effective_from: date
    severities: dict[str, Severity] = Field(min_length=1)

    @field_validator("severities")
    @classmethod
    def _ids(cls, value: dict[str, Severity]) -> dict[str, Severity]:
        for key in value:
            if not re.match(ID, key):
                raise ValueError(f"severity id {key!r} must be lower-case letters, digits, _")
        return value

    def digest(self) -> str:
        body = json.dumps(self.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(body.encode()).hexdigest()


class PolicyFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    policies: list[Policy] = Field(min_length=1)

    @model_validator(mode="after")
    def _distinct(self) -> PolicyFile:
        versions = [p.version for p in self.policies]
        if len(versions) != len(set(versions)):
            raise ValueError("policies: two policies share a version")
        dates = [p.effective_from for p in self.policies]
        if len(dates) != len(set(dates)):
            raise ValueError("policies: two policies take effect on the same date")
        return self


class PolicySet:
    """All policy versions; a ticket is judged by the one in force on its report date."""

    def __init__(self, policies: list[Policy]) -> None:
        self.policies = sorted(policies, key=lambda p: p.effective_from)
        self.by_version = {p.version: p for p in self.policies}

    def in_force(self, on: date) -> Policy | None:
        found = None
        for policy in self.policies:
            if policy.effective_from <= on:
                found = policy
        return found

    def version(self, version: str) -> Policy:
        return self.by_version[version]

    def severity_ids(self) -> set[str]:
        return {s for p in self.policies for s in p.severities}


def load_policy_file(config_dir: Path) -> PolicyFile:
    return load_config(PolicyFile, config_dir / "sla.yaml")
