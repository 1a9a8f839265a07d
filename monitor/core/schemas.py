"""The base of every client input, and the bounds every input shares."""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, field_validator

# Instants the product accepts: anything else is a typing slip (or a probe), never a fault.
FIRST_YEAR, LAST_YEAR = 2000, 2099
MAX_EVIDENCE_ITEMS = 20
MAX_REF = 2048


def bounded(value: datetime) -> datetime:
    """A time within the years the product judges, refused by name before any arithmetic
    (0001-01-01+08:00 would overflow on the way to UTC)."""
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise ValueError(
            f"{value.isoformat()} is outside {FIRST_YEAR}–{LAST_YEAR}; write a real time, "
            "e.g. 2022-08-10T11:41:00+08:00"
        )
    return value


BoundedTime = Annotated[datetime, AfterValidator(bounded)]


def visible(value: str | None) -> str | None:
    """A name people read and type: not blank, and no invisible characters that would make
    two different ids look the same (zero-width spaces, direction marks, controls)."""
    if value is None:
        return value
    if not value.strip():
        raise ValueError("must not be blank")
    hidden = [c for c in value if unicodedata.category(c) in ("Cf", "Cc", "Co", "Cs")]
    if hidden:
        raise ValueError(f"contains an invisible character (U+{ord(hidden[0]):04X})")
    return value.strip()


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list | tuple):
        return any(_has_nul(v) for v in value)
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    return False


class Input(BaseModel):
    """Base of every client input: unknown fields and NUL characters are refused."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        if _has_nul(value):
            raise ValueError("text must not contain NUL characters")
        if _has_surrogate(value):
            raise ValueError("text must be valid Unicode (a lone surrogate was sent)")
        return value


def _has_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        # Strict UTF-8 refuses exactly the surrogates; in C, where a loop over the characters
        # cost a sixth of a request's CPU on a long description.
        if value.isascii():
            return False
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, list | tuple):
        return any(_has_surrogate(v) for v in value)
    if isinstance(value, dict):
        return any(_has_surrogate(k) or _has_surrogate(v) for k, v in value.items())
    return False
