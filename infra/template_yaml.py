"""Reading template.yaml: its resources, and the HTTP routes it wires to handlers (used by the
local server and the tests)."""

from __future__ import annotations

import copy
import functools
import importlib
import re
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
    """template.yaml as it is now: a copy of its parse, the caller's to change."""
    return copy.deepcopy(_template())


def _template() -> dict[str, Any]:
    """The parse of template.yaml as it is now, shared: this module only reads it."""
    return _parse(TEMPLATE.read_text())


@functools.cache
def _parse(text: str) -> dict[str, Any]:
    # Once per text: a parse takes a quarter of a second, and tests load a handler per request.
    template: dict[str, Any] = yaml.load(text, Loader=_TemplateLoader)
    return template


def functions() -> dict[str, dict[str, Any]]:
    """The function resources, by logical id (a copy, the caller's to change)."""
    return copy.deepcopy(_functions())


def _functions() -> dict[str, dict[str, Any]]:
    return {
        name: resource
        for name, resource in _template()["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


def route_functions(api: str | None = None) -> dict[str, str]:
    """``"METHOD /path"`` → the function (logical id) of every HttpApi event, or of those on
    the API ``api`` names (``HttpApi``: the IAM API; ``ApprovalsApi``: the approval pages)."""
    return {
        f"{event['Properties']['Method']} {event['Properties']['Path']}": name
        for name, function in _functions().items()
        for event in function["Properties"].get("Events", {}).values()
        if event["Type"] == "HttpApi"
        and (api is None or event["Properties"]["ApiId"] == {"Ref": api})
    }


def http_routes() -> dict[str, tuple[str, str]]:
    """``"METHOD /path"`` → (handler module, function) for every HttpApi event."""
    handlers = {name: f["Properties"]["Handler"] for name, f in _functions().items()}
    routes = {}
    for route, name in route_functions().items():
        module, _, handler = handlers[name].rpartition(".")
        routes[route] = (module, handler)
    return routes


def dashboard_routes() -> dict[str, str]:
    """``"METHOD /path"`` → the function (logical id) each DashboardApi route invokes, through
    the integration its Target names."""
    resources = load_template()["Resources"]
    routes = {}
    for resource in resources.values():
        properties = resource["Properties"]
        if resource["Type"] != "AWS::ApiGatewayV2::Route":
            continue
        target = re.fullmatch(r"integrations/\$\{(\w+)\}", properties["Target"]["Sub"])
        assert target is not None, properties["Target"]
        function = resources[target[1]]["Properties"]["IntegrationUri"]["GetAtt"]
        routes[properties["RouteKey"]] = function.removesuffix(".Arn")
    return routes


def cors_configuration(api: str = "HttpApi") -> dict[str, Any]:
    """An API's CorsConfiguration as it is when CorsAllowOrigins is set (its AllowOrigins is
    the parameter, split at commas)."""
    condition, configuration, otherwise = load_template()["Resources"][api]["Properties"][
        "CorsConfiguration"
    ]["If"]
    assert (condition, otherwise) == ("HasCors", {"Ref": "AWS::NoValue"})
    return dict(configuration)


def apis_with_cors() -> set[str]:
    """The SAM HTTP APIs with a CorsConfiguration (the approval pages' API has none)."""
    return {
        name
        for name, resource in load_template()["Resources"].items()
        if resource["Type"] == "AWS::Serverless::HttpApi"
        and "CorsConfiguration" in resource["Properties"]
    }


def load_handler(name: str) -> Callable[[Any, Any], Any]:
    """The callable template.yaml names for a route (``"POST /runs/{runId}/signals/..."``)
    or a function (``"DeliverFunction"``)."""
    if name in _functions():
        module, _, attribute = _functions()[name]["Properties"]["Handler"].rpartition(".")
    else:
        module, attribute = http_routes()[name]
    handler: Callable[[Any, Any], Any] = getattr(importlib.import_module(module), attribute)
    return handler
