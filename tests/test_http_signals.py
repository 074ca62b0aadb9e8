"""Failure signals, early signals and who delivered, over HTTP and direct invocation, through
the handlers template.yaml names (on moto)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from flowsignals.testing import FakeLambdaContext, http_api_event
from template_yaml import load_handler

REGISTER = "PUT /runs/{runId}/waiters/{stepKey}"
GET = "GET /runs/{runId}/waiters/{stepKey}"
DELIVER = "POST /runs/{runId}/signals/{signalName}"
FAIL = "POST /runs/{runId}/signals/{signalName}/failure"
SIGNALS = "GET /runs/{runId}/signals"
ANA = "arn:aws:iam::123456789012:user/ana"


def http(route: str, parameters: dict[str, str], body: Any = None, **request: Any) -> Any:
    if body is not None and not isinstance(body, str):
        body = json.dumps(body)
    event = http_api_event(route, parameters, body=body, **request)
    event["requestContext"]["authorizer"] = {"iam": {"userArn": ANA}}
    answer = load_handler(route)(event, FakeLambdaContext())
    return answer["statusCode"], json.loads(answer["body"]) if answer.get("body") else None


def invoke(function: str, event: dict[str, Any]) -> Any:
    return load_handler(function)(event, FakeLambdaContext())


@pytest.fixture
def run(fresh_runtime: Any) -> str:
    return f"order-{uuid4().hex[:8]}"


def register(run: str, step: str = "review", name: str = "approve") -> tuple[int, Any]:
    return http(REGISTER, {"runId": run, "stepKey": step}, {"signalName": name})  # type: ignore[no-any-return]


def test_a_rejection_is_a_delivery_with_a_failure_and_the_caller_recorded(run: str) -> None:
    register(run)
    status, answer = http(
        FAIL, {"runId": run, "signalName": "approve"}, {"error": "Rejected", "cause": "No budget"}
    )
    assert status == 200 and answer["delivered"] is True and answer["stepKey"] == "review"

    status, waiter = http(GET, {"runId": run, "stepKey": "review"})
    assert status == 200
    assert waiter["failure"] == {"error": "Rejected", "cause": "No budget"}
    assert waiter["payload"] is None and waiter["state"] == "Delivered"
    assert waiter["deliveredBy"] == ANA

    status, conflict = http(DELIVER, {"runId": run, "signalName": "approve"}, {"approved": True})
    assert status == 409 and conflict["code"] == "AlreadyDelivered"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"error": ""},
        {"error": "x" * 257},
        {"error": "a\nb"},
        {"error": "Rejected", "cause": "c" * 32_769},
        {"error": "Rejected", "extra": 1},
        {"error": 5},
        [],
    ],
    ids=["no error", "empty", "long", "control", "long cause", "extra", "number", "list"],
)
def test_a_bad_failure_body_is_400_and_delivers_nothing(run: str, body: Any) -> None:
    register(run)
    status, problem = http(FAIL, {"runId": run, "signalName": "approve"}, body)
    assert status == 400 and problem["code"] == "InvalidRequest"
    assert http(GET, {"runId": run, "stepKey": "review"})[1]["state"] == "Waiting"


def test_an_early_signal_waits_for_its_step_and_is_listed_meanwhile(run: str) -> None:
    parameters = {"runId": run, "signalName": "approve"}
    key = {"Idempotency-Key": "click-1"}
    status, answer = http(
        DELIVER, parameters, {"approved": True}, raw_query_string="bufferSeconds=3600", headers=key
    )
    assert status == 202
    assert answer["delivered"] is False and answer["buffered"] is True
    until = datetime.fromisoformat(answer["bufferedUntil"])
    assert timedelta(minutes=59) < until - datetime.now(until.tzinfo) <= timedelta(hours=1)

    again = http(
        DELIVER, parameters, {"approved": True}, raw_query_string="bufferSeconds=3600", headers=key
    )
    assert again == (202, {**answer, "replayed": True})
    status, signals = http(SIGNALS, {"runId": run})
    assert status == 200 and [s["signalName"] for s in signals["signals"]] == ["approve"]
    assert signals["signals"][0]["bufferedUntil"] == answer["bufferedUntil"]

    status, waiter = register(run)
    assert status == 200 and waiter["state"] == "Delivered"
    assert waiter["payload"] == {"approved": True} and waiter["deliveredBy"] == ANA
    assert http(SIGNALS, {"runId": run}) == (200, {"signals": []})
    status, replay = http(
        DELIVER, parameters, {"approved": True}, raw_query_string="bufferSeconds=3600", headers=key
    )
    assert status == 200 and replay["replayed"] is True and replay["stepKey"] == "review"


@pytest.mark.parametrize("seconds", ["0", "-1", "2592001", "1.5", "soon"])
def test_a_bad_buffer_time_is_400_and_buffers_nothing(run: str, seconds: str) -> None:
    status, problem = http(
        DELIVER,
        {"runId": run, "signalName": "approve"},
        {},
        raw_query_string=f"bufferSeconds={seconds}",
    )
    assert status == 400 and problem["detail"].startswith("bufferSeconds: ")
    assert http(SIGNALS, {"runId": run}) == (200, {"signals": []})


def test_without_buffer_seconds_a_signal_nobody_waits_for_is_404(run: str) -> None:
    status, problem = http(DELIVER, {"runId": run, "signalName": "approve"}, {})
    assert status == 404 and problem["code"] == "NotFound"
    assert http(SIGNALS, {"runId": run}) == (200, {"signals": []})


def test_direct_invocation_delivers_failures_and_early_signals(run: str) -> None:
    early = invoke(
        "DeliverFunction",
        {
            "runId": run,
            "signalName": "approve",
            "failure": {"error": "Rejected"},
            "deliveredBy": "ops-bot",
            "bufferSeconds": 600,
        },
    )
    assert early["status"] == "Buffered" and early["expiresAt"] and early["stepKey"] is None
    assert invoke("SignalsFunction", {"runId": run})["signals"][0]["signalName"] == "approve"

    waiter = invoke(
        "RegisterFunction",
        {"runId": run, "stepKey": "review", "signalName": "approve", "taskToken": "tok"},
    )
    assert waiter["state"] == "Delivered"
    assert waiter["failure"] == {"error": "Rejected", "cause": None}
    assert waiter["deliveredBy"] == "ops-bot" and "tok" not in json.dumps(waiter)


@pytest.mark.parametrize(
    "event",
    [
        {"payload": {}, "failure": {"error": "Rejected"}},
        {"failure": {"error": ""}},
        {"failure": "Rejected"},
        {"deliveredBy": "x" * 513},
        {"deliveredBy": "a\u0000b"},
        {"bufferSeconds": 0},
        {"bufferSeconds": True},
    ],
    ids=["both", "empty error", "string failure", "long by", "control by", "zero", "bool"],
)
def test_bad_direct_deliveries_are_exactly_invalid_signal_request(
    run: str, event: dict[str, Any]
) -> None:
    with pytest.raises(Exception) as raised:  # noqa: PT011 - the type's name is the contract
        invoke("DeliverFunction", {"runId": run, "signalName": "approve", **event})
    assert type(raised.value).__name__ == "InvalidSignalRequest"
    assert invoke("SignalsFunction", {"runId": run}) == {"signals": []}


@pytest.mark.parametrize(
    ("authorizer", "recorded"),
    [
        ({"iam": {"userArn": ANA}}, ANA),
        (
            {
                "jwt": {
                    "claims": {
                        "email": "bo@example.com",
                        "email_verified": "true",
                        "username": "bo",
                        "sub": "1",
                    }
                }
            },
            "bo@example.com",
        ),
        # An address nobody verified is not recorded as who decided.
        ({"jwt": {"claims": {"email": "ceo@example.com", "username": "bo", "sub": "1"}}}, "bo"),
        (
            {"jwt": {"claims": {"email": "x@example.com", "email_verified": "false", "sub": "1"}}},
            "1",
        ),
        ({"jwt": {"claims": {"cognito:username": "bo-cognito", "sub": "1"}}}, "bo-cognito"),
        ({"jwt": {"claims": {"username": "bo", "sub": "1"}}}, "bo"),
        ({"jwt": {"claims": {"sub": "5d1c"}}}, "5d1c"),
        ({"jwt": {"claims": {"email": ""}}}, None),
        ({}, None),
    ],
    ids=[
        "iam",
        "verified email",
        "unverified email",
        "email_verified false",
        "cognito username",
        "username",
        "sub",
        "empty claim",
        "none",
    ],
)
def test_who_delivered_is_what_the_authorizer_vouches_for(
    run: str, authorizer: dict[str, Any], recorded: str | None
) -> None:
    register(run)
    event = http_api_event(DELIVER, {"runId": run, "signalName": "approve"}, body="{}")
    event["requestContext"]["authorizer"] = authorizer
    assert load_handler(DELIVER)(event, FakeLambdaContext())["statusCode"] == 200
    assert http(GET, {"runId": run, "stepKey": "review"})[1]["deliveredBy"] == recorded
