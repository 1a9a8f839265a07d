"""Writes schemas/*.json from the models (`make schemas`); a test keeps them current."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from monitor.calendars.loader import CalendarFile
from monitor.catalog.models import Catalog
from monitor.notifications.routing import NotificationsFile
from monitor.scoring.rules import IndicatorFile
from monitor.sla.policy import PolicyFile
from monitor.tickets.schemas import ImportFile

SCHEMAS: dict[str, tuple[type[BaseModel], str]] = {
    "import.schema.json": (ImportFile, "SLA Monitor ticket import file"),
    "sla-policy.schema.json": (PolicyFile, "SLA Monitor policy file (config/sla.yaml)"),
    "calendar.schema.json": (CalendarFile, "SLA Monitor working-day arrangements"),
    "catalog.schema.json": (Catalog, "SLA Monitor catalog (config/catalog.yaml)"),
    "indicators.schema.json": (IndicatorFile, "SLA Monitor scoring rules (config/indicators.yaml)"),
    "notifications.schema.json": (
        NotificationsFile,
        "SLA Monitor notice routing (config/notifications.yaml)",
    ),
}


def render(model: type[BaseModel], title: str) -> str:
    schema: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **model.model_json_schema(by_alias=True),
    }
    schema["title"] = title
    return json.dumps(schema, ensure_ascii=False, indent=2, sort_keys=True) + "\n"


def write_all(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (model, title) in SCHEMAS.items():
        path = folder / name
        path.write_text(render(model, title), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_all(Path("schemas")):
        print(path)
