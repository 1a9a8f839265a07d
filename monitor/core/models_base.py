"""Shared column helpers so every table stores instants the same way."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from monitor.core.db import NAMING_CONVENTION, UTCDateTime

SQLModel.metadata.naming_convention = NAMING_CONVENTION


def instant(*, index: bool = False, nullable: bool = False) -> Any:
    """A column of aware UTC instants."""
    return Field(
        default=None if nullable else ..., sa_type=UTCDateTime, index=index, nullable=nullable
    )


def json_list() -> Any:
    return Field(default_factory=list, sa_type=sa.JSON)


def text(nullable: bool = False) -> Any:
    return Field(default=None if nullable else "", sa_type=sa.Text, nullable=nullable)
