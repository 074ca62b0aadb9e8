"""Fuzzing: schemathesis generates requests from the committed OpenAPI document and sends them
to `make run`'s server (the real handlers); no answer may be a 5xx, and every answer must match
the document (status code, content type, body schema, headers)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from conftest import running_local_server
from openapi import DOCUMENT

schema = schemathesis.openapi.from_path(DOCUMENT)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@pytest.fixture(scope="module")
def api_url() -> Iterator[str]:
    with running_local_server() as url:
        yield url


@schema.parametrize()
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_every_answer_conforms_and_none_is_a_5xx(case: schemathesis.Case, api_url: str) -> None:
    case.call_and_validate(base_url=api_url, checks=CHECKS)
