"""Each function serves only its own routes, the ones its HttpApi events in template.yaml name:
an HTTP event for any other route is answered as API Gateway answers an unknown route, and
reads and writes nothing. (Whoever may invoke one function, as a state machine may invoke the
register function, gets no other function's power with it.)"""

from __future__ import annotations

import json
from typing import Any
from uuid import uuid4

import pytest

from flowsignals import InvalidSignalRequest
from flowsignals.lambdas import runtime
from flowsignals.lambdas.handlers import routes_of
from flowsignals.testing import FakeLambdaContext, http_api_event, record_requests
from template_yaml import functions, load_handler, route_functions

NOT_FOUND = (404, {"message": "Not Found"})
PARAMETERS = {"runId": "run-1", "stepKey": "step", "signalName": "approve", "token": "x.y"}
FORGED_CFO = {"iam": {"userArn": "arn:aws:iam::123456789012:user/the-cfo"}}


def event_for(route_key: str, body: Any = None) -> dict[str, Any]:
    names = [name for name in PARAMETERS if "{" + name + "}" in route_key]
    event = http_api_event(
        route_key,
        {name: PARAMETERS[name] for name in names},
        body=None if body is None else json.dumps(body),
    )
    event["requestContext"]["authorizer"] = FORGED_CFO
    return event


def answer(function: str, event: dict[str, Any]) -> tuple[int, Any]:
    raw = load_handler(function)(event, FakeLambdaContext())
    return raw["statusCode"], json.loads(raw["body"]) if raw.get("body") else None


def test_each_functions_routes_are_the_ones_its_events_name() -> None:
    own: dict[str, set[str]] = {}
    for route, function in route_functions().items():
        own.setdefault(function, set()).add(route)
    for function, routes in own.items():
        assert routes_of(load_handler(function)).api.route_keys == routes, function


@pytest.mark.parametrize("function", sorted(f for f in functions() if f != "NotifierFunction"))
def test_an_event_for_another_functions_route_is_api_gateways_404_and_touches_nothing(
    fresh_runtime: Any, function: str
) -> None:
    others = [route for route, owner in route_functions().items() if owner != function]
    assert others
    with record_requests(fresh_runtime) as requests:
        for route in others:
            assert answer(function, event_for(route, {"signalName": "x"})) == NOT_FOUND, route
    assert requests == []


def test_the_register_function_never_delivers_even_as_a_forged_cfo(fresh_runtime: Any) -> None:
    run = str(uuid4())
    runtime.store().register_waiter(run, "payment", "approve")
    deliver = event_for("POST /runs/{runId}/signals/{signalName}", {"approved": True})
    deliver["pathParameters"]["runId"] = run
    # Sent to the register function (which a state machine may invoke), shaped as a delivery.
    assert answer("RegisterFunction", deliver) == NOT_FOUND
    # Its own route key, but the method and path of a delivery: no route of its either.
    disguised = dict(deliver, routeKey="PUT /runs/{runId}/waiters/{stepKey}")
    assert answer("RegisterFunction", disguised) == NOT_FOUND
    waiter = runtime.store().get_waiter(run, "payment")
    assert waiter is not None and not waiter.is_delivered


def test_the_deliver_function_never_removes(fresh_runtime: Any) -> None:
    run = str(uuid4())
    runtime.store().register_waiter(run, "step", "approve")
    remove = event_for("DELETE /runs/{runId}/waiters/{stepKey}")
    remove["pathParameters"]["runId"] = run
    assert answer("DeliverFunction", remove) == NOT_FOUND
    assert runtime.store().get_waiter(run, "step") is not None


@pytest.mark.parametrize(
    ("function", "foreign"),
    [
        ("RegisterFunction", {"runId": "r", "signalName": "approve", "payload": {}}),
        ("GetFunction", {"runId": "r", "signalName": "approve", "expiresInSeconds": 60}),
        ("ListFunction", {"runId": "r", "stepKey": "s", "signalName": "go"}),
        ("LinksFunction", {"runId": "r", "stepKey": "s"}),
    ],
)
def test_each_function_accepts_only_its_own_direct_operation(
    fresh_runtime: Any, function: str, foreign: dict[str, Any]
) -> None:
    with (
        record_requests(fresh_runtime) as requests,
        pytest.raises(InvalidSignalRequest) as raised,
    ):
        load_handler(function)(foreign, FakeLambdaContext())
    assert type(raised.value).__name__ == "InvalidSignalRequest"
    assert requests == []
