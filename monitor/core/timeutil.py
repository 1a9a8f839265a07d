"""Parsing and showing instants: UTC inside, the configured zone at the edges."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, tzinfo


def parse_instant(value: object, tz: tzinfo) -> datetime:
    """An aware UTC datetime from an ISO 8601 string or datetime; naive means local `tz`."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        raise ValueError(f"{value.isoformat()} is a date without a time of day")
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            raise ValueError("time is empty")
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(
                f"time {value!r} does not parse (use ISO 8601, e.g. 2022-08-10T11:41:00+08:00)"
            ) from None
        if len(text) <= 10:
            raise ValueError(f"{value!r} is a date without a time of day")
    else:
        raise ValueError(f"time must be a string, not {type(value).__name__}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed.astimezone(UTC)


def show(at: datetime | None, tz: tzinfo) -> str:
    """A local time as people write it, with its offset, e.g. 2022-08-10 11:41:00+08:00."""
    if at is None:
        return "—"
    text = at.astimezone(tz).isoformat(sep=" ", timespec="seconds")
    return text


def iso(at: datetime | None, tz: tzinfo) -> str | None:
    return None if at is None else at.astimezone(tz).isoformat()


def human_duration(delta: timedelta) -> str:
    """A duration in Chinese units, e.g. 7天4小时19分."""
    total = int(delta.total_seconds())
    sign = "-" if total < 0 else ""
    total = abs(total)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = []
    if days:
        parts.append(f"{days}天")
    if hours:
        parts.append(f"{hours}小时")
    if minutes:
        parts.append(f"{minutes}分")
    if seconds or not parts:
        parts.append(f"{seconds}秒")
    return sign + "".join(parts)


def utc(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError("naive datetime")
    return at.astimezone(UTC)


def year_bounds(year: int, tz: tzinfo) -> tuple[datetime, datetime]:
    """The UTC instants at which a local calendar year begins and ends."""
    return (
        datetime(year, 1, 1, tzinfo=tz).astimezone(UTC),
        datetime(year + 1, 1, 1, tzinfo=tz).astimezone(UTC),
    )


def month_bounds(year: int, month: int, tz: tzinfo) -> tuple[datetime, datetime]:
    """The UTC instants at which a local calendar month begins and ends."""
    nxt = (year + 1, 1) if month == 12 else (year, month + 1)
    return (
        datetime(year, month, 1, tzinfo=tz).astimezone(UTC),
        datetime(*nxt, 1, tzinfo=tz).astimezone(UTC),
    )
