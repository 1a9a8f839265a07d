"""Alembic environment: the URL comes from the caller's config or SLAMON_DATABASE_URL."""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from sqlmodel import SQLModel

import monitor.models  # noqa: F401  (registers every table)
from monitor.core.db import UTCDateTime, make_engine
from monitor.core.settings import get_settings

config = context.config
target_metadata = SQLModel.metadata


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | Literal[False]:
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "monitor.core.db.UTCDateTime()"
    return False


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    # The search index (migration c3a1f0e5d2b7) is kept by the database and is no model.
    return not (type_ == "table" and (name or "").startswith("ticket_grams"))


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url") or get_settings().database_url
    connectable = make_engine(url)
    with connectable.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_item=render_item,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
            include_object=include_object,
        )
        with context.begin_transaction():
            context.run_migrations()
    connectable.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; use `sla-monitor db upgrade`")
run_migrations_online()
