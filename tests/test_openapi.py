"""The committed OpenAPI document is the one the resolver generates (`make openapi`)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from flowsignals.core.values import BufferSecondsText, PageLimitText
from openapi import DOCUMENT, openapi_document
from template_yaml import http_routes


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
    assert (key["minLength"], key["maxLength"]) == (1, 128)
    for name in ("runId", "signalName"):
        schema = deliver_parameters[("path", name.lower())]["schema"]
        assert (schema["minLength"], schema["maxLength"]) == (1, 256)

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


QUERY_NUMBERS = [
    ("/runs/{runId}/waiters", "get", "limit", PageLimitText),
    ("/runs/{runId}/signals/{signalName}", "post", "bufferSeconds", BufferSecondsText),
]
TEXTS = st.one_of(
    st.integers(-10, 3_000_000).map(str),
    st.from_regex("[0-9]{1,9}", fullmatch=True),
    st.from_regex("[-+ 0-9._eE]{0,12}", fullmatch=True),
    st.text(max_size=6),
)


@pytest.mark.parametrize(("path", "method", "name", "value_type"), QUERY_NUMBERS)
def test_a_query_number_s_documented_pattern_is_exactly_what_the_server_reads(
    path: str, method: str, name: str, value_type: Any
) -> None:
    document = json.loads(DOCUMENT.read_text())
    (parameter,) = (p for p in document["paths"][path][method]["parameters"] if p["name"] == name)
    schema = parameter["schema"]
    (text_schema,) = (s for s in schema.get("anyOf", [schema]) if s["type"] == "string")
    pattern = re.compile(text_schema["pattern"])
    reader = TypeAdapter(value_type)

    @given(TEXTS)
    @settings(max_examples=300, deadline=None)
    def agree(text: str) -> None:
        try:
            reader.validate_python(text)
        except ValidationError:
            assert not pattern.fullmatch(text), text
        else:
            assert pattern.fullmatch(text), text

    agree()
