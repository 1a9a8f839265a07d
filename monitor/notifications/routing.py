"""Who hears of what: `config/notifications.yaml` routes notices by kind, pool and severity to
named channels whose Apprise addresses come from environment variables only."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from monitor.core.config_files import load_config
from monitor.notifications.models import NoticeKind

FILE = "notifications.yaml"
# SLAMON_NOTIFY_URLS feeds this channel, which receives every notice.
EVERYONE = "default"
CHANNEL_ID = r"^[a-z][a-z0-9_-]{0,63}$"
log = logging.getLogger(__name__)


class Channel(BaseModel):
    """A group of people: its Apprise addresses live in an environment variable, never here."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100, description="中文名称，如 政务二云值班群")
    env: str = Field(
        pattern=r"^SLAMON_NOTIFY_[A-Z0-9_]{1,64}$",
        description="the environment variable holding this channel's Apprise URLs "
        "(space-separated), e.g. SLAMON_NOTIFY_POOL2_DUTY",
    )


class Route(BaseModel):
    """Notices matching every given filter go to `channels`; an absent filter matches all."""

    model_config = ConfigDict(extra="forbid")
    kinds: list[NoticeKind] | None = Field(default=None, min_length=1)
    pools: list[str] | None = Field(default=None, min_length=1, max_length=50)
    severities: list[str] | None = Field(default=None, min_length=1, max_length=50)
    channels: list[str] = Field(min_length=1, max_length=50)

    def matches(self, kind: str, pool: str | None, severity: str | None) -> bool:
        return (
            (self.kinds is None or kind in self.kinds)
            and (self.pools is None or pool in self.pools)
            and (self.severities is None or severity in self.severities)
        )


class Retry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    attempts: int = Field(default=8, ge=1, le=50, description="tries before a notice is failed")
    first_delay_seconds: float = Field(default=10, gt=0, le=3600)
    max_delay_seconds: float = Field(default=600, gt=0, le=86400)

    def delay(self, attempt: int) -> timedelta:
        """Exponential back-off after the `attempt`-th failure (1-based)."""
        seconds = self.first_delay_seconds * 2 ** min(attempt - 1, 30)
        return timedelta(seconds=min(seconds, self.max_delay_seconds))


class NotificationsFile(BaseModel):
    """config/notifications.yaml."""

    model_config = ConfigDict(extra="forbid")
    channels: dict[str, Channel] = Field(default_factory=dict, max_length=100)
    routes: list[Route] = Field(default_factory=list, max_length=200)
    review_due_hours: float = Field(
        default=72,
        gt=0,
        le=8760,
        description="a breach still unreviewed this long after it was detected is "
        "announced to the supervision unit",
    )
    history_hours: float = Field(
        default=24,
        gt=0,
        le=8760,
        description="a breach recorded more than this long after its deadline is history "
        "being entered, not news: it is recorded but nobody is paged",
    )
    retry: Retry = Field(default_factory=Retry)

    @model_validator(mode="after")
    def _references(self) -> NotificationsFile:
        import re

        for key in self.channels:
            if key == EVERYONE or not re.match(CHANNEL_ID, key):
                raise ValueError(
                    f"channels: {key!r} is not a channel id (lower-case letters, digits, - and _; "
                    f"{EVERYONE!r} is SLAMON_NOTIFY_URLS)"
                )
        for i, route in enumerate(self.routes):
            for name in route.channels:
                if name not in self.channels:
                    raise ValueError(f"routes[{i}].channels: no channel {name!r} is defined")
        return self


@dataclass(frozen=True)
class Endpoint:
    """One Apprise address of a channel: `key` is a digest that names it without its secrets."""

    channel: str
    url: str
    key: str
    label: str


def endpoint(channel: str, url: str) -> Endpoint:
    import apprise

    plugin = apprise.Apprise.instantiate(url)
    label = plugin.url(privacy=True).split("?", 1)[0] if plugin else "（无效的 Apprise 地址）"
    return Endpoint(channel, url, hashlib.sha256(url.encode()).hexdigest()[:32], label[:300])


@dataclass(frozen=True)
class Routing:
    """The configuration resolved against the environment: channels with their addresses."""

    file: NotificationsFile
    endpoints: dict[str, list[Endpoint]] = field(default_factory=dict)

    def channels_for(self, kind: str, pool: str | None, severity: str | None) -> list[str]:
        names = [EVERYONE]
        for route in self.file.routes:
            if route.matches(kind, pool, severity):
                names += route.channels
        return [n for n in dict.fromkeys(names) if self.endpoints.get(n)]

    def find(self, channel: str, key: str) -> Endpoint | None:
        return next((e for e in self.endpoints.get(channel, []) if e.key == key), None)

    @property
    def history(self) -> timedelta:
        return timedelta(hours=self.file.history_hours)

    @property
    def review_due(self) -> timedelta:
        return timedelta(hours=self.file.review_due_hours)


def load_routing(
    config_dir: Path, notify_urls: str, environ: Mapping[str, str] | None = None
) -> Routing:
    """The routing file (optional) with every channel's addresses read from the environment;
    cached until the file or a channel's variable changes. Every new ticket asks (its
    notices): one stat of the file and a lookup a channel, where reading every variable of
    the environment to find the channels' cost a write about 0.1 ms."""
    env = os.environ if environ is None else environ
    path = config_dir / FILE
    try:
        mtime: int | None = path.stat().st_mtime_ns
    except FileNotFoundError:
        mtime = None
    channels = _file(path, mtime).channels.values()
    return _load(path, mtime, notify_urls, tuple((c.env, env.get(c.env, "")) for c in channels))


@lru_cache(maxsize=16)
def _file(path: Path, mtime: int | None) -> NotificationsFile:
    return load_config(NotificationsFile, path) if mtime is not None else NotificationsFile()


@lru_cache(maxsize=16)
def _load(
    path: Path, mtime: int | None, notify_urls: str, environ: tuple[tuple[str, str], ...]
) -> Routing:
    file = _file(path, mtime)
    env = dict(environ)
    endpoints = {EVERYONE: [endpoint(EVERYONE, u) for u in notify_urls.split()]}
    for name, channel in file.channels.items():
        endpoints[name] = [endpoint(name, u) for u in env.get(channel.env, "").split()]
        if not endpoints[name]:
            log.warning(
                "notice channel %s has no address (%s is not set): it receives nothing",
                name,
                channel.env,
            )
    return Routing(file, endpoints)
