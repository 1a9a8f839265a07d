"""The committed JSON Schemas are the ones the models generate, and they describe real files."""

from __future__ import annotations

import json

import jsonschema
import yaml

from monitor.schemas_export import SCHEMAS, render
from tests.conftest import CONFIG, ROOT


def test_committed_schemas_are_current() -> None:
    for name, (model, title) in SCHEMAS.items():
        committed = (ROOT / "schemas" / name).read_text(encoding="utf-8")
        assert committed == render(model, title), f"schemas/{name} is stale: run `make schemas`"


def test_the_shipped_config_files_match_their_schemas() -> None:
    for name, config in (
        ("sla-policy.schema.json", "sla.yaml"),
        ("catalog.schema.json", "catalog.yaml"),
        ("indicators.schema.json", "indicators.yaml"),
        ("calendar.schema.json", "calendar.yaml"),
        ("notifications.schema.json", "notifications.yaml"),
    ):
        schema = json.loads((ROOT / "schemas" / name).read_text(encoding="utf-8"))
        data = json.loads(
            json.dumps(yaml.safe_load((CONFIG / config).read_text("utf-8")), default=str)
        )
        jsonschema.validate(data, schema)


def test_the_import_schema_accepts_the_specification_example_and_refuses_extra_fields() -> None:
    schema = json.loads((ROOT / "schemas" / "import.schema.json").read_text(encoding="utf-8"))
    example = {
        "tickets": [
            {
                "external_id": "EX-0001",
                "pool": "pool2",
                "severity": "major",
                "title": "重要业务系统异常",
                "source": "user_report",
                "events": [{"type": "reported", "at": "2022-08-10T11:41:00+08:00"}],
            }
        ]
    }
    jsonschema.validate(example, schema)
    example["tickets"][0]["recorded_at"] = "x"
    try:
        jsonschema.validate(example, schema)
    except jsonschema.ValidationError:
        return
    raise AssertionError("recorded_at must not be accepted from clients")
