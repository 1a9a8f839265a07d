"""Property-based API testing from our own OpenAPI: no 5xx, every response matches its schema.

The operations are driven one by one with hypothesis rather than through the pytest plugin,
so each database's app fixture is used as it is."""

from __future__ import annotations

import os
from typing import Any

import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.helpers import ticket_body

EXAMPLES = int(os.environ.get("SLAMON_SCHEMATHESIS_EXAMPLES", "30"))
# Deterministic in CI; set SLAMON_SCHEMATHESIS_RANDOM=1 to explore new inputs.
DERANDOMIZE = not os.environ.get("SLAMON_SCHEMATHESIS_RANDOM")
# Domain refusals of schema-valid input (an unknown pool, a time in the future) are correct
# 422s, so positive-data acceptance is not asked for; everything else is.
CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
]


def test_every_operation_honours_its_own_schema(
    app: FastAPI, client: TestClient, auth: dict[str, dict[str, str]]
) -> None:
    # A ticket with breaches, so routes that take ids have something to find.
    client.post("/api/v1/tickets", json=ticket_body(), headers=auth["admin"])
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 13
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=DERANDOMIZE,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Any) -> None:
            case.call_and_validate(headers=auth["admin"], checks=CHECKS)

        check()
