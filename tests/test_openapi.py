"""The committed OpenAPI document is the one the resolver generates (`make openapi`)."""

from __future__ import annotations

import json

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
