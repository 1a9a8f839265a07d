"""The calendar in force: the package's years, then config/calendar.yaml, then admin loads."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import Session, col, select

from monitor.audit import service as audit
from monitor.calendars.calendar import WorkCalendar, YearArrangement, build_calendar
from monitor.calendars.calendar import package_arrangements as package_years
from monitor.calendars.loader import (
    arrangement_from_dict,
    arrangement_to_dict,
    read_calendar_file,
)
from monitor.calendars.models import CalendarLoad
from monitor.core.errors import ConfigError, InvalidInput


def config_arrangements(config_dir: Path) -> list[YearArrangement]:
    path = config_dir / "calendar.yaml"
    if not path.exists():
        return []
    try:
        return read_calendar_file(path)
    except InvalidInput as exc:
        lines = "\n".join(f"  {p}" for p in exc.problems)
        raise ConfigError(f"{path}: invalid\n{lines}") from None


def loaded_arrangements(session: Session) -> list[YearArrangement]:
    """The latest load of each year."""
    latest = (
        select(CalendarLoad.year, sa.func.max(CalendarLoad.id).label("id"))
        .group_by(col(CalendarLoad.year))
        .subquery()
    )
    rows = session.exec(
        select(CalendarLoad).join(latest, col(CalendarLoad.id) == latest.c.id)
    ).all()
    return [arrangement_from_dict(r.body) for r in rows]


def current_calendar(session: Session, config_dir: Path) -> WorkCalendar:
    return build_calendar(
        package_years(), config_arrangements(config_dir), loaded_arrangements(session)
    )


def load_arrangements(
    session: Session,
    arrangements: list[YearArrangement],
    *,
    actor: str,
    at: datetime,
    file_name: str,
) -> list[CalendarLoad]:
    """Record admin-loaded years, each in the audit log."""
    rows = []
    for arrangement in arrangements:
        body = arrangement_to_dict(arrangement)
        row = CalendarLoad(
            year=arrangement.year,
            source=arrangement.source,
            body=body,
            loaded_at=at,
            loaded_by=actor,
        )
        session.add(row)
        session.flush()
        audit.append(
            session,
            at=at,
            actor=actor,
            action="calendar.loaded",
            entity="calendar",
            entity_id=arrangement.year,
            payload={"file": file_name, **body},
        )
        rows.append(row)
    return rows
