"""Direct invocation (docs/contract.md, Direct invocation): the same functions given plain
events, as Step Functions or another Lambda would call them, on moto."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any
from uuid import uuid4

import pytest

from conftest import TABLE_NAME, reset_runtime, silent_endpoint
from flowsignals.testing import FakeLambdaContext
from template_yaml import load_handler

Invoke = Callable[[str, Any], Any]


@pytest.fixture
def invoke(fresh_runtime: Any) -> Invoke:
    """``invoke("DeliverFunction", event)`` calls the handler template.yaml names."""
    return lambda name, event: load_handler(name)(event, FakeLambdaContext())


@pytest.fixture
def run() -> str:
    return str(uuid4())


def test_all_five_functions_answer_plain_json(invoke: Invoke, run: str) -> None:
    waiter = invoke(
        "RegisterFunction",
        {"runId": run, "stepKey": "approval", "signalName": "approve", "timeoutSeconds": 60,
         "taskToken": "tok"},
    )  # fmt: skip
    assert waiter["stepKey"] == "approval" and waiter["state"] == "Waiting"
    assert "taskToken" not in waiter and "tok" not in str(waiter)

    result = invoke(
        "DeliverFunction", {"runId": run, "signalName": "approve", "payload": {"ok": 1}}
    )
    assert result == {
        "status": "Delivered",
        "stepKey": "approval",
        "deliveredAt": result["deliveredAt"],
        "expiresAt": None,
        "replayed": False,
    }

    read = invoke("GetFunction", {"runId": run, "stepKey": "approval"})
    assert read["payload"] == {"ok": 1} and read["state"] == "Delivered"
    assert invoke("ListFunction", {"runId": run}) == {"waiters": [read], "nextToken": None}
    assert invoke("RemoveFunction", {"runId": run, "stepKey": "approval"}) == {}
    assert invoke("GetFunction", {"runId": run, "stepKey": "approval"}) is None


def test_deliver_reports_every_status_as_data(invoke: Invoke, run: str) -> None:
    deliver = {"runId": run, "signalName": "go"}
    assert invoke("DeliverFunction", deliver)["status"] == "NotFound"

    invoke("RegisterFunction", {"runId": run, "stepKey": "s", "signalName": "go",
                                "expiresAt": "2020-01-01T00:00:00Z"})  # fmt: skip
    expired = invoke("DeliverFunction", deliver)
    assert expired["status"] == "Expired" and expired["expiresAt"] == "2020-01-01T00:00:00.000Z"

    invoke("RegisterFunction", {"runId": run, "stepKey": "s", "signalName": "go"})
    first = invoke("DeliverFunction", {**deliver, "idempotencyKey": "k"})
    replay = invoke("DeliverFunction", {**deliver, "idempotencyKey": "k"})
    again = invoke("DeliverFunction", deliver)
    assert replay == {**first, "replayed": True}
    assert again["status"] == "AlreadyDelivered" and again["stepKey"] == "s"


@pytest.mark.parametrize(
    ("event", "payload"),
    [({}, {}), ({"payload": None}, None), ({"payload": [1, "two"]}, [1, "two"])],
    ids=["omitted is {}", "explicit null is null", "a list"],
)
def test_payload_defaults(invoke: Invoke, run: str, event: dict[str, Any], payload: Any) -> None:
    invoke("RegisterFunction", {"runId": run, "stepKey": "s", "signalName": "go"})
    invoke("DeliverFunction", {"runId": run, "signalName": "go", **event})
    assert invoke("GetFunction", {"runId": run, "stepKey": "s"})["payload"] == payload


DEEP: list[Any] = []
for _ in range(200):
    DEEP = [DEEP]

BAD_EVENTS = [
    ("RegisterFunction", {"runId": " nope", "stepKey": "s", "signalName": "go"}),
    ("RegisterFunction", {"stepKey": "s", "signalName": "go"}),
    ("RegisterFunction", {"runId": str(uuid4()), "stepKey": "s", "signalName": "go",
                          "timeoutSeconds": 5, "expiresAt": "2030-01-01T00:00:00Z"}),
    ("RegisterFunction", {"runId": str(uuid4()), "stepKey": "s", "signalName": "go",
                          "expiresAt": "2030-01-01T00:00:00"}),
    ("RegisterFunction", {"runId": str(uuid4()), "stepKey": 5, "signalName": "go"}),
    ("DeliverFunction", {"runId": str(uuid4()), "signalName": "go", "payload": "x" * 262_200}),
    ("DeliverFunction", {"runId": str(uuid4()), "signalName": ""}),
    ("DeliverFunction", {"runId": str(uuid4()), "signalName": "go", "idempotencyKey": ""}),
    ("GetFunction", {"runId": str(uuid4())}),
    ("GetFunction", {"runId": str(uuid4()), "stepKey": " "}),
    ("RemoveFunction", {"runId": "a\nb", "stepKey": "s"}),
    ("ListFunction", {}),
    ("ListFunction", {"runId": "r", "limit": 0}),
    ("ListFunction", {"runId": "r", "limit": 101}),
    ("ListFunction", {"runId": "r", "nextToken": "forged"}),
    ("DeliverFunction", {"runId": "r", "signalName": "go", "payload": 1e400}),
    ("DeliverFunction", {"runId": "r", "signalName": "go", "payload": float("nan")}),
    ("DeliverFunction", {"runId": "r", "signalName": "go", "payload": 10**400}),
    ("DeliverFunction", {"runId": "r", "signalName": "go", "payload": ["\ud800"]}),
    ("DeliverFunction", {"runId": "r", "signalName": "go", "payload": {"\udfff": 1}}),
    ("DeliverFunction", {"runId": "r", "signalName": "go", "payload": DEEP}),
    ("RegisterFunction", {"runId": "r", "stepKey": "s", "signalName": "go",
                          "expiresAt": "1700000000"}),
    ("RegisterFunction", {"runId": "r", "stepKey": "s", "signalName": "go",
                          "timeoutSeconds": 10**5000}),
    ("DeliverFunction", {"requestContext": None}),
    ("DeliverFunction", {"requestContext": {}}),
    ("DeliverFunction", {"requestContext": "x", "version": "2.0"}),
    ("DeliverFunction", {"version": "2.0", "routeKey": "POST /x", "rawPath": "/x",
                         "requestContext": {"http": None}}),
    ("GetFunction", "a string"),
    ("GetFunction", 42),
    ("ListFunction", ["not", "an", "object"]),
    ("ListFunction", None),
]  # fmt: skip


@pytest.mark.parametrize(("function", "event"), BAD_EVENTS)
def test_bad_input_raises_exactly_invalid_signal_request(
    invoke: Invoke, function: str, event: Any
) -> None:
    with pytest.raises(Exception) as raised:  # noqa: PT011 - the type's name is the contract
        invoke(function, event)
    assert type(raised.value).__name__ == "InvalidSignalRequest"
    assert str(raised.value)


def test_an_oversized_payload_is_invalid_signal_request_not_its_subclass(
    invoke: Invoke, run: str
) -> None:
    invoke("RegisterFunction", {"runId": run, "stepKey": "s", "signalName": "go"})
    with pytest.raises(Exception, match="262144") as raised:
        invoke("DeliverFunction", {"runId": run, "signalName": "go", "payload": "x" * 262_200})
    assert type(raised.value).__name__ == "InvalidSignalRequest"
    assert invoke("GetFunction", {"runId": run, "stepKey": "s"})["state"] == "Waiting"


def test_an_unavailable_store_raises_exactly_store_unavailable_in_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A state machine Retries on the name StoreUnavailable, so it must arrive before the
    function's own timeout, under that exact name."""
    monkeypatch.setenv("TABLE_NAME", TABLE_NAME)
    with silent_endpoint() as endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", endpoint)
        reset_runtime()
        context = FakeLambdaContext(remaining_time_in_millis=6_000)
        started = time.monotonic()
        with pytest.raises(Exception) as raised:  # noqa: PT011 - the type's name is the contract
            load_handler("DeliverFunction")({"runId": "r", "signalName": "go"}, context)
        assert time.monotonic() - started < 6.0, "raised after the function's timeout"
    reset_runtime()
    assert type(raised.value).__name__ == "StoreUnavailable"


def test_direct_invocations_publish_the_same_metrics_as_http(
    invoke: Invoke, run: str, capsys: pytest.CaptureFixture[str]
) -> None:
    invoke("RegisterFunction", {"runId": run, "stepKey": "s", "signalName": "go"})
    invoke("DeliverFunction", {"runId": run, "signalName": "go"})
    invoke("DeliverFunction", {"runId": run, "signalName": "go"})
    published = [
        name
        for line in capsys.readouterr().out.splitlines()
        if '"_aws"' in line
        for metric in json.loads(line)["_aws"]["CloudWatchMetrics"]
        for name in (m["Name"] for m in metric["Metrics"])
    ]
    assert published == ["WaiterRegistered", "SignalDelivered", "SignalAlreadyDelivered"]
