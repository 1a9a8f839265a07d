"""The base of every client input, and the bounds every input shares."""

from __future__ import annotations

import re
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
    if value.isprintable():  # one C scan: every character of those categories is unprintable
        return value.strip()
    hidden = [c for c in value if unicodedata.category(c) in ("Cf", "Cc", "Co", "Cs")]
    if hidden:
        raise ValueError(f"contains an invisible character (U+{ord(hidden[0]):04X})")
    return value.strip()


class Input(BaseModel):
    """Base of every client input: unknown fields and NUL characters are refused."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        bad = _bad_character(value)
        if bad == "\x00":
            raise ValueError("text must not contain NUL characters")
        if bad is not None:
            raise ValueError("text must be valid Unicode (a lone surrogate was sent)")
        return value


# NUL, or a lone surrogate (which no UTF-8 body can carry, but a JSON escape can).
_BAD = re.compile("[\x00\ud800-\udfff]")


def _bad_character(value: Any) -> str | None:
    """The first NUL or lone surrogate in a value's text, if any: one C scan per string. An
    object (a dict) is an input model of its own, which checks its own fields (and refuses
    keys it does not know), so it is not walked here too: a file's tickets were walked three
    times, by the file, each ticket and each event."""
    if isinstance(value, str):
        found = _BAD.search(value)
        return None if found is None else found.group()
    if isinstance(value, list | tuple):
        for item in value:
            bad = _bad_character(item)
            if bad is not None:
                return bad
    return None
