"""Direct invocation (SPEC section 4): the same operations for Step Functions or any Lambda
caller, plain JSON in and out. Every bad input raises an exception whose type name is exactly
``InvalidSignalRequest``, so one ``Catch`` of a state machine matches them all."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from flowsignals.errors import InvalidSignalRequest
from flowsignals.runtime import store, utc_now
from flowsignals.schemas import (
    DeliverSignalEvent,
    RegisterWaiterEvent,
    RunEvent,
    WaiterEvent,
    delivery_result_view,
    parse_request,
    waiter_view,
)


@contextmanager
def _exactly_invalid_signal_request() -> Iterator[None]:
    """Subclasses (PayloadTooLarge) reach the caller under the one name it catches."""
    try:
        yield
    except InvalidSignalRequest as error:
        if type(error) is InvalidSignalRequest:
            raise
        raise InvalidSignalRequest(str(error)) from None


def register(event: Any) -> dict[str, Any]:
    with _exactly_invalid_signal_request():
        request = parse_request(RegisterWaiterEvent, event)
        now = utc_now()
        waiter = store().register_waiter(
            request.runId,
            request.stepKey,
            request.signalName,
            request.deadline(now),
            task_token=request.taskToken,
        )
    return waiter_view(waiter, now)


def deliver(event: Any) -> dict[str, Any]:
    with _exactly_invalid_signal_request():
        request = parse_request(DeliverSignalEvent, event)
        result = store().deliver_signal(
            request.runId,
            request.signalName,
            request.payload_json(),
            idempotency_key=request.idempotencyKey,
        )
    return delivery_result_view(result)


def get(event: Any) -> dict[str, Any] | None:
    with _exactly_invalid_signal_request():
        request = parse_request(WaiterEvent, event)
        waiter = store().get_waiter(request.runId, request.stepKey)
    return None if waiter is None else waiter_view(waiter, utc_now())


def remove(event: Any) -> dict[str, Any]:
    with _exactly_invalid_signal_request():
        request = parse_request(WaiterEvent, event)
        store().remove_waiter(request.runId, request.stepKey)
    return {}


def list_waiters(event: Any) -> dict[str, Any]:
    with _exactly_invalid_signal_request():
        request = parse_request(RunEvent, event)
        waiters = store().list_waiters(request.runId)
    now = utc_now()
    return {"waiters": [waiter_view(waiter, now) for waiter in waiters]}


DirectOperation = Callable[[Any], Any]
