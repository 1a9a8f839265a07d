"""Every setting of the product, read from SLAMON_* environment variables."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from monitor.core.errors import ConfigError


class Settings(BaseSettings):
    """Built by `get_settings()` (never at import) so tests can make their own."""

    model_config = SettingsConfigDict(env_prefix="SLAMON_", extra="ignore")

    database_url: str = "sqlite:///var/sla-monitor.db"
    config_dir: Path = Path("config")
    evidence_dir: Path = Path("var/evidence")
    evidence_max_bytes: int = 50 * 1024 * 1024
    # The largest request body other than an evidence upload (JSON writes, forms).
    max_body_bytes: int = 1024 * 1024
    # A ticket's whole timeline is bounded: appends past this are refused.
    max_events_per_ticket: int = 1000
    timezone: str = "Asia/Shanghai"
    # When set, /metrics asks for `Authorization: Bearer <this>`.
    metrics_token: str | None = None
    # An event whose time lies further ahead of the server clock than this is refused.
    future_tolerance_seconds: int = 300
    # Data-quality findings: open longer than this many times the severity's longest target,
    # events entered this long after they happened, verification this long after resolution.
    finding_overdue_factor: float = 3.0
    finding_late_entry_hours: float = 24.0
    finding_late_verification_hours: float = 72.0
    # Notices: Apprise URLs (space-separated) that receive every notice; the address people
    # open a ticket at (links in notices); how long a sender holds a delivery it is sending.
    notify_urls: str = ""
    public_url: str = ""
    notify_claim_seconds: float = 60.0
    # The scheduler's leader lease: a dead leader's jobs move to another replica within about
    # this long (renewed every third of it).
    lease_seconds: float = Field(default=15.0, gt=0, le=3600)
    # One line per request on standard error (`serve`); off, as a write's who and what are
    # in the audit log, and the line cost a few per cent of a write's CPU.
    access_log: bool = False

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except Exception as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("public_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError(f"SLAMON_PUBLIC_URL must start with http:// or https://: {value!r}")
        return value.rstrip("/")

    @cached_property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def get_settings() -> Settings:
    """The settings, or a `ConfigError` naming each bad variable (not pydantic's report)."""
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigError(
            "; ".join(
                f"SLAMON_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
                for e in exc.errors()
            )
        ) from None
