"""The committed OpenAPI document is the one the resolver generates (`make openapi`), and it
says every rule the server enforces: what its schemas accept, the server accepts, and what the
server accepts, they accept."""

from __future__ import annotations

import functools
import json
from typing import Any

import jsonschema_rs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from flowsignals.core.values import (
    ActionLabel,
    ActionName,
    Approver,
    BufferSeconds,
    BufferSecondsText,
    CallerIdentities,
    Deadline,
    Deciders,
    FailureCause,
    FailureError,
    HeaderIdempotencyKey,
    IdempotencyKey,
    LinkSeconds,
    PageLimit,
    PageLimitText,
    Quorum,
    RunId,
    SignalName,
    StepKey,
    TaskToken,
    TimeoutSeconds,
)
from flowsignals.testing import FakeLambdaContext, http_api_event
from openapi import DOCUMENT, openapi_document
from template_yaml import http_routes, load_handler, route_functions


def test_the_committed_openapi_document_is_current() -> None:
    assert DOCUMENT.read_text() == openapi_document(), "stale: run `make openapi` and commit"


def test_the_document_has_every_route_of_the_template_and_its_problem_answers() -> None:
    document = json.loads(openapi_document())
    operations = {
        f"{method.upper()} {path}" for path, item in document["paths"].items() for method in item
    }
    assert operations == set(http_routes())
    deliver = document["paths"]["/runs/{runId}/signals/{signalName}"]["post"]["responses"]
    assert {"200", "400", "404", "409", "410", "413", "503"} <= set(deliver)
    assert "application/problem+json" in deliver["409"]["content"]
    assert document["security"] == [{"sigv4": []}]
    assert "422" not in json.dumps(document["paths"]), "bad input is answered 400, never 422"
    assert '"#/components/schemas/' in json.dumps(document)
    for reference in _references(document):
        assert reference.rpartition("/")[2] in document["components"]["schemas"]


def _references(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if "$ref" in node else []
        return found + [r for value in node.values() for r in _references(value)]
    if isinstance(node, list):
        return [r for value in node for r in _references(value)]
    return []


def test_every_request_is_described_completely_with_its_rules() -> None:
    document = json.loads(openapi_document())
    paths = document["paths"]

    def parameters(path: str, method: str) -> dict[tuple[str, str], Any]:
        return {(p["in"], p["name"].lower()): p for p in paths[path][method]["parameters"]}

    deliver = paths["/runs/{runId}/signals/{signalName}"]["post"]
    assert "application/json" in deliver["requestBody"]["content"]
    deliver_parameters = parameters("/runs/{runId}/signals/{signalName}", "post")
    key = deliver_parameters[("header", "idempotency-key")]["schema"]["anyOf"][0]
    assert "{0,126}" in key["pattern"]  # 1 to 128 characters, once spaces are dropped
    run_id = deliver_parameters[("path", "runid")]["schema"]
    assert (run_id["minLength"], run_id["maxLength"]) == (1, 256)
    # A signal name's 256 characters are counted once surrounding whitespace is stripped.
    assert "{0,254}" in deliver_parameters[("path", "signalname")]["schema"]["pattern"]

    listing = parameters("/runs/{runId}/waiters", "get")
    assert {("query", "limit"), ("query", "nexttoken")} <= set(listing)

    register = paths["/runs/{runId}/waiters/{stepKey}"]["put"]["requestBody"]["content"]
    body = _resolve(document, register["application/json"]["schema"])
    assert set(body["properties"]) == {
        "signalName",
        "expiresAt",
        "timeoutSeconds",
        "deciders",
        "quorum",
    }
    assert body["required"] == ["signalName"]
    assert body.get("additionalProperties") is False
    timeout = body["properties"]["timeoutSeconds"]["anyOf"][0]
    assert (timeout["minimum"], timeout["maximum"]) == (1, 31_536_000)
    assert body["properties"]["expiresAt"]["anyOf"][0]["format"] == "date-time"


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rpartition("/")[2]]
    return schema


# --- the rules of each value, as its schema says them --------------------------------------

# Characters where the rules draw their lines: whitespace (some of it control characters),
# control characters, invisible formatting characters (Cf), e-mail and ARN punctuation, digits
# of other scripts, and case.
EDGES = " \t\n\x0b\x1c\x1f\x7f\x85\x9f\xa0\u1680\u2000\u2028\u3000\u00ad\u200b\u202e\ufeff"
EDGES += "\U000e0001@:/._-+eE0123456789\u0665\uff15\u00b2aZ\u00c9\u0130\U0001f600"
TEXTS = st.one_of(
    st.text(st.sampled_from(EDGES), max_size=8),
    st.text(max_size=8),
    st.builds(
        lambda edge, count, tail: edge + "x" * count + tail,
        st.text(st.sampled_from(EDGES), max_size=2),
        st.integers(250, 260),
        st.text(st.sampled_from(EDGES), max_size=2),
    ),
)
NUMBERS = st.one_of(
    st.integers(-3, 35_000_000),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, 1.0, 60.0, 100.0, 1e2, 2.5, 10.0, 2_592_000.0, 1e300]),
    st.booleans(),
    st.none(),
    st.text(st.sampled_from(" +-.0125e_"), max_size=5),
    st.lists(st.integers(1, 5), max_size=1),
)
DIGITS = st.one_of(st.integers(-10, 3_000_000).map(str), TEXTS, st.text("0123456789", max_size=30))
ARNS = st.builds(
    "{}arn:aws{}:{}::{}:{}/{}{}".format,
    st.sampled_from(["", " "]),
    st.sampled_from(["", "-cn", "X"]),
    st.sampled_from(["iam", "sts"]),
    st.sampled_from(["123456789012", "12345678901", "\u0661" * 12]),
    st.sampled_from(["user", "role", "assumed-role", "group"]),
    st.sampled_from(["", "path/", "a/b/"]),
    TEXTS,
)
IDENTITIES = st.one_of(
    st.builds("{}:{}".format, st.sampled_from(["email", "sub", "group", "iam", "x", ""]), TEXTS),
    st.builds("email:{}@{}".format, TEXTS, TEXTS),
    st.builds("iam:{}".format, ARNS),
)
DATE_TIMES = st.builds(
    "{:04}-{:02}-{:02}{}{:02}:{:02}{}{}{}".format,
    st.integers(0, 10_000),
    st.integers(0, 13),
    st.integers(0, 32),
    st.sampled_from(["T", "t", " "]),
    st.integers(0, 25),
    st.integers(0, 61),
    st.one_of(st.just(""), st.integers(0, 61).map(":{:02}".format)),
    st.one_of(st.just(""), st.text("0123456789", min_size=1, max_size=12).map(".{}".format)),
    st.one_of(
        st.sampled_from(["Z", "z", ""]),
        st.builds(
            "{}{:02}:{:02}".format, st.sampled_from("+-"), st.integers(0, 25), st.integers(0, 61)
        ),
        st.builds(
            "{}{:02}{:02}".format, st.sampled_from("+-"), st.integers(0, 14), st.integers(0, 59)
        ),
    ),
)
# (type, candidate values, the schema also refuses some values the type takes and keeps in
# another spelling)
VALUE_TYPES = {
    "RunId": (RunId, TEXTS, False),
    "StepKey": (StepKey, TEXTS, False),
    "SignalName": (SignalName, TEXTS, False),
    "FailureError": (FailureError, TEXTS, False),
    "FailureCause": (FailureCause, TEXTS, False),
    "TaskToken": (TaskToken, TEXTS, False),
    "IdempotencyKey": (IdempotencyKey, TEXTS, False),
    "ActionName": (ActionName, TEXTS, False),
    "ActionLabel": (ActionLabel, TEXTS, False),
    "Approver": (Approver, TEXTS, False),
    "TimeoutSeconds": (TimeoutSeconds, NUMBERS, False),
    "BufferSeconds": (BufferSeconds, NUMBERS, False),
    "LinkSeconds": (LinkSeconds, NUMBERS, False),
    "Quorum": (Quorum, NUMBERS, False),
    "PageLimit": (PageLimit, NUMBERS, False),
    "PageLimitText": (PageLimitText, DIGITS, False),
    "BufferSecondsText": (BufferSecondsText, DIGITS, False),
    "Deadline": (Deadline, st.one_of(DATE_TIMES, TEXTS), False),
    "Deciders": (Deciders, st.lists(IDENTITIES, max_size=3), True),
    "CallerIdentities": (CallerIdentities, st.lists(IDENTITIES, max_size=3), True),
}


@pytest.mark.parametrize(
    ("value_type", "values", "canonical_only"), VALUE_TYPES.values(), ids=VALUE_TYPES.keys()
)
def test_each_value_s_schema_says_exactly_what_the_server_takes(
    value_type: Any, values: st.SearchStrategy[Any], canonical_only: bool
) -> None:
    adapter = TypeAdapter(value_type)
    schema = jsonschema_rs.Draft202012Validator(adapter.json_schema(), validate_formats=True)

    @given(values)
    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    def agree(value: Any) -> None:
        try:
            adapter.validate_python(value)
        except ValidationError:
            taken = False
        else:
            taken = True
        if canonical_only:
            assert taken or not schema.is_valid(value), value
        else:
            assert taken == schema.is_valid(value), value

    agree()


def test_the_idempotency_key_header_s_schema_says_what_arrives_once_http_trims_it() -> None:
    adapter = TypeAdapter(HeaderIdempotencyKey)
    schema = jsonschema_rs.Draft202012Validator(adapter.json_schema())

    @given(st.one_of(TEXTS, st.text(" \tab~\x7f", max_size=6), st.just("k" * 128 + " " * 9)))
    @settings(max_examples=200, deadline=None)
    def agree(value: str) -> None:
        try:
            adapter.validate_python(value.strip(" \t"))  # as API Gateway hands it on
        except ValidationError:
            assert not schema.is_valid(value), value
        else:
            assert schema.is_valid(value), value

    agree()


@pytest.mark.parametrize("value_type", [Deciders, CallerIdentities])
def test_identities_given_as_they_are_kept_are_unique_as_the_schema_says(value_type: Any) -> None:
    adapter = TypeAdapter(value_type)
    schema = jsonschema_rs.Draft202012Validator(adapter.json_schema(), validate_formats=True)
    kept = ["email:ana@example.com", "iam:arn:aws:iam::123456789012:role/Approvers"]
    other_spellings = ["email:Ana@Example.com", "iam:arn:aws:iam::123456789012:role/ops/Approvers"]
    assert schema.is_valid(kept) and adapter.validate_python(kept) == tuple(kept)
    assert not schema.is_valid(other_spellings)
    assert adapter.validate_python(other_spellings) == tuple(kept)


# --- the rules across fields of the bodies, and the answers ------------------------------


@functools.cache
def _document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DOCUMENT.read_text())
    return document


def _body_schema(path: str, method: str) -> jsonschema_rs.Draft202012Validator:
    body = _document()["paths"][path][method]["requestBody"]
    schema = body["content"]["application/json"]["schema"]
    return jsonschema_rs.Draft202012Validator(
        {**schema, "components": _document()["components"]}, validate_formats=True
    )


LATER = "2030-01-01T00:00:00Z"
TWO = ["sub:a", "sub:b"]
BODIES = [
    ("PUT /runs/{runId}/waiters/{stepKey}", [
        {"signalName": "go"},
        {"signalName": "go", "expiresAt": LATER, "timeoutSeconds": 60},
        {"signalName": "go", "expiresAt": None, "timeoutSeconds": 60},
        {"signalName": "go", "expiresAt": LATER, "timeoutSeconds": None},
        {"signalName": "go", "deciders": ["sub:a"], "quorum": 2},
        {"signalName": "go", "deciders": TWO, "quorum": 2},
        {"signalName": "go", "deciders": [], "quorum": 3},
        {"signalName": "go", "deciders": None, "quorum": 10},
        {"signalName": "go", "quorum": 2.0, "deciders": TWO},
        {"signalName": " \t go \u3000"},
        {"signalName": "\u3000"},
        {"signalName": "g\x85o"},
        {"signalName": "go", "expiresAt": "2026-11-23 10:15:30Z"},
        {"signalName": "go", "expiresAt": "2026-11-23T10:15Z"},
        {"signalName": "go", "expiresAt": "2026-11-23T10:15:30+0200"},
        {"signalName": "go", "expiresAt": "1998-12-31T23:59:60Z"},
        {"signalName": "go", "expiresAt": "1998-12-31T15:59:60.5-08:00"},
        {"signalName": "go", "expiresAt": "1998-12-31T22:59:60Z"},
        {"signalName": "go", "expiresAt": "2026-11-23t10:15:30.123456789z"},
        {"signalName": "go", "expiresAt": "0001-01-01T00:00:00+01:00"},
        {"signalName": "go", "expiresAt": "9999-12-31T23:00:00-02:00"},
        {"signalName": "go", "expiresAt": "2024-02-29T00:00:00Z"},
        {"signalName": "go", "expiresAt": "2023-02-29T00:00:00Z"},
        [{"signalName": "go"}],
    ]),
    ("POST /runs/{runId}/signals/{signalName}/links", [
        {},
        None,
        {"actions": {"no spaces": {}}},
        {"actions": {"ok": {"label": "\u202eevorppa"}}},
        {"actions": {"ok": {"label": " "}}},
        {"actions": {"ok": {"label": "Approve \u2705"}}},
        {"actions": {"ok": {"payload": 1, "failure": {"error": "E"}}}},
        {"actions": {"ok": {"payload": None, "failure": {"error": "E"}}}},
        {"actions": {"ok": {"payload": None, "failure": None}}},
        {"actions": {"ok": {"failure": {"error": "E"}}}},
        {"approver": "ana@example.com"},
        {"approver": "\u200b"},
        {"approver": "a\u00adb"},
        {"expiresInSeconds": 60.0},
        {"expiresInSeconds": "60"},
        [None],
    ]),
    ("POST /runs/{runId}/signals/{signalName}/failure", [
        {"error": "Rejected"},
        {"error": "Re\u0007jected"},
        {"error": "Rejected", "cause": "a\nb"},
        {"cause": "no error"},
    ]),
]  # fmt: skip


@pytest.mark.parametrize(("route", "bodies"), BODIES, ids=[route for route, _ in BODIES])
def test_each_body_s_schema_says_exactly_what_the_server_takes(
    links: Any, route: str, bodies: list[Any]
) -> None:
    method, _, path = route.partition(" ")
    schema, handler = _body_schema(path, method.lower()), load_handler(route)
    for number, body in enumerate(bodies):
        names = {"runId": f"run-{number}", "stepKey": "s", "signalName": "go"}
        event = http_api_event(route, names, body=None if body is None else json.dumps(body))
        answer = handler(event, FakeLambdaContext())
        assert answer["statusCode"] in (200, 202, 404, 400), (body, answer)
        assert schema.is_valid(body) == (answer["statusCode"] != 400), (body, answer["body"])


def test_a_body_is_required_where_the_server_needs_one() -> None:
    for path, item in _document()["paths"].items():
        for method, operation in item.items():
            if "requestBody" in operation:
                schema = _body_schema(path, method)
                required = operation["requestBody"].get("required", False)
                assert required == (not schema.is_valid({})), f"{method} {path}"


def test_every_route_documents_each_answer_it_may_give() -> None:
    iam_routes = set(route_functions("HttpApi"))
    for path, item in _document()["paths"].items():
        for method, operation in item.items():
            route, answers = f"{method.upper()} {path}", operation["responses"]
            assert {"500", "503"} <= set(answers), route
            if route in iam_routes:
                # API Gateway's own refusal of a request without a valid signature.
                assert "application/json" in answers["403"]["content"], route
            else:
                assert {"400", "403", "404", "409", "410"} <= set(answers), route
            if "requestBody" in operation:
                assert {"400", "413" if route in iam_routes else "400"} <= set(answers), route


def test_the_register_answer_links_what_a_client_may_do_next() -> None:
    operations = {
        operation["operationId"]: (path, operation)
        for path, item in _document()["paths"].items()
        for operation in item.values()
    }
    links = _document()["paths"]["/runs/{runId}/waiters/{stepKey}"]["put"]["responses"]["200"][
        "links"
    ]
    assert {"getWaiter", "deliverSignal", "removeWaiter"} <= {
        link["operationId"] for link in links.values()
    }
    for link in links.values():
        _, operation = operations[link["operationId"]]
        path_names = {p["name"] for p in operation["parameters"] if p["in"] == "path"}
        assert path_names <= set(link["parameters"]), link
        for expression in link["parameters"].values():
            field = expression.removeprefix("$response.body#/")
            assert field in _document()["components"]["schemas"]["WaiterView"]["properties"]
