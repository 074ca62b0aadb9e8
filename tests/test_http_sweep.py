"""No malformed request is ever answered 5xx: random names, bodies, headers and encodings on
every route, through the real handlers, on moto."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import LINK_BASE, LINK_KEY, TABLE_NAME, moto_table, reset_runtime
from flowsignals.testing import FakeLambdaContext, http_api_event
from template_yaml import http_routes, load_handler

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3)
    ),
    max_leaves=8,
)
REGISTER_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "signalName": JSON_VALUES | st.text(max_size=300),
        "expiresAt": JSON_VALUES
        | st.sampled_from(
            ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00", "2030-02-30T00:00Z"]
        )
        | st.datetimes().map(lambda d: d.isoformat()),
        "timeoutSeconds": JSON_VALUES | st.integers(min_value=-(10**20), max_value=10**20),
        "taskToken": JSON_VALUES | st.text(max_size=3000),
        "extra": JSON_VALUES,
    },
)
BODIES = st.one_of(
    st.none(),
    st.text(max_size=200),
    st.binary(max_size=100),
    JSON_VALUES.map(json.dumps),
    REGISTER_FIELDS.map(json.dumps),
)
NAMES = st.one_of(
    st.text(max_size=300),
    st.uuids().map(str),
    st.sampled_from(["", " ", "%", "%2F", "a/b", "\x00", "\u202e", "🦆"]),
)
CONTENT_TYPES = [
    "application/json",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data",
    "multipart/form-data; boundary=x",
    "application/json; charset=latin-1",
    "",
]
# Mostly a few valid runs, so that requests reach the store and meet each other's waiters.
RUN_IDS = st.sampled_from([str(uuid4()) for _ in range(3)])
HEADERS = st.fixed_dictionaries(
    {},
    optional={
        "content-type": st.sampled_from(CONTENT_TYPES),
        "idempotency-key": st.text(max_size=200),
    },
)


@pytest.fixture(scope="module")
def handlers() -> Iterator[dict[str, Any]]:
    patch = pytest.MonkeyPatch()
    patch.setenv("TABLE_NAME", TABLE_NAME)
    patch.setenv("LINK_KEY", json.dumps(LINK_KEY))
    patch.setenv("LINK_BASE_URL", LINK_BASE)
    with moto_table():
        reset_runtime()
        yield {route: load_handler(route) for route in http_routes()}
    reset_runtime()
    patch.undo()


@settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    route=st.sampled_from(sorted(http_routes())),
    run_id=st.one_of(RUN_IDS, RUN_IDS, NAMES),
    name=st.one_of(st.sampled_from(["approve", "s"]), NAMES),
    body=BODIES,
    headers=HEADERS,
)
def test_no_malformed_request_gets_a_5xx(
    handlers: dict[str, Any], route: str, run_id: str, name: str, body: Any, headers: Any
) -> None:
    parameters = {"token": name} if "{token}" in route else {"runId": run_id}
    if "{stepKey}" in route:
        parameters["stepKey"] = name
    if "{signalName}" in route:
        parameters["signalName"] = name
    event = http_api_event(route, parameters, body=body, headers=headers)

    answer = handlers[route](event, FakeLambdaContext())

    assert answer["statusCode"] < 500, answer
    if "{token}" in route:  # an approval page
        assert answer["headers"]["Content-Type"] == "text/html; charset=utf-8"
    elif json.loads(answer["body"] or "null") == {"message": "Not Found"}:
        # API Gateway's answer to a path no route matches: only an empty name makes one.
        assert answer["statusCode"] == 404 and "" in parameters.values()
    elif answer["statusCode"] >= 400:
        assert answer["headers"]["Content-Type"] == "application/problem+json"
        assert json.loads(answer["body"])["status"] == answer["statusCode"]
