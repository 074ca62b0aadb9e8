"""Reading template.yaml: its resources, and the HTTP routes it wires to handlers (used by the
local server and the tests)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

TEMPLATE = Path(__file__).resolve().parent.parent / "template.yaml"


class _TemplateLoader(yaml.SafeLoader):
    """Reads CloudFormation's short tags (!Ref, !GetAtt, ...) as {"Fn": value} mappings."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        return {suffix: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {suffix: loader.construct_sequence(node)}
    return {suffix: loader.construct_mapping(node)}  # type: ignore[arg-type]


_TemplateLoader.add_multi_constructor("!", _tag)


def load_template() -> dict[str, Any]:
    template: dict[str, Any] = yaml.load(TEMPLATE.read_text(), Loader=_TemplateLoader)
    return template


def functions() -> dict[str, dict[str, Any]]:
    return {
        name: resource
        for name, resource in load_template()["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


def http_routes() -> dict[str, tuple[str, str]]:
    """``"METHOD /path"`` → (handler module, function) for every HttpApi event."""
    routes = {}
    for function in functions().values():
        module, _, handler = function["Properties"]["Handler"].rpartition(".")
        for event in function["Properties"].get("Events", {}).values():
            if event["Type"] == "HttpApi":
                properties = event["Properties"]
                routes[f"{properties['Method']} {properties['Path']}"] = (module, handler)
    return routes


def load_handler(name: str) -> Callable[[Any, Any], Any]:
    """The callable template.yaml names for a route (``"POST /runs/{runId}/signals/..."``)
    or a function (``"DeliverFunction"``)."""
    if name in functions():
        module, _, attribute = functions()[name]["Properties"]["Handler"].rpartition(".")
    else:
        module, attribute = http_routes()[name]
    handler: Callable[[Any, Any], Any] = getattr(importlib.import_module(module), attribute)
    return handler
