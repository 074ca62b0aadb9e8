"""Direct invocation: the same operations for Step Functions or any Lambda caller, plain JSON
in and out. Every bad input raises an exception whose type name is exactly
``InvalidSignalRequest``, and an unavailable store one named exactly ``StoreUnavailable``, so
one ``Catch`` or ``Retry`` of a state machine matches each."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from flowsignals.core.arguments import validate
from flowsignals.core.errors import InvalidSignalRequest
from flowsignals.lambdas.runtime import approvals, link_base_url, service
from flowsignals.lambdas.schemas import (
    DeliverSignalEvent,
    ListWaitersEvent,
    RegisterWaiterEvent,
    SignalsEvent,
    WaiterEvent,
    delivery_result_view,
)

DirectOperation = Callable[[Any], Any]


@contextmanager
def _exactly_invalid_signal_request() -> Iterator[None]:
    """Subclasses (PayloadTooLarge) reach the caller under the one name it catches."""
    try:
        yield
    except InvalidSignalRequest as error:
        if type(error) is InvalidSignalRequest:
            raise
        # PayloadTooLarge: the direct event calls the payload "payload".
        raise InvalidSignalRequest(str(error).replace("payload_json:", "payload:", 1)) from None


def register(event: Any) -> dict[str, Any]:
    with _exactly_invalid_signal_request():
        return service().register(validate(RegisterWaiterEvent, event))


def deliver(event: Any) -> dict[str, Any]:
    with _exactly_invalid_signal_request():
        request = validate(DeliverSignalEvent, event)
        result = service().deliver(
            request.runId,
            request.signalName,
            request.payload_json(),
            failure=None if request.failure is None else request.failure.failure(),
            idempotency_key=request.idempotencyKey,
            delivered_by=request.deliveredBy,
            buffer_seconds=request.bufferSeconds,
            caller_identities=request.callerIdentities,
        )
    return delivery_result_view(result)


def list_signals(event: Any) -> dict[str, Any]:
    with _exactly_invalid_signal_request():
        return service().list_buffered(validate(SignalsEvent, event).runId)


def get(event: Any) -> dict[str, Any] | None:
    with _exactly_invalid_signal_request():
        request = validate(WaiterEvent, event)
        return service().get(request.runId, request.stepKey)


def remove(event: Any) -> dict[str, Any]:
    with _exactly_invalid_signal_request():
        request = validate(WaiterEvent, event)
        service().remove(request.runId, request.stepKey)
    return {}


def list_waiters(event: Any) -> dict[str, Any]:
    with _exactly_invalid_signal_request():
        request = validate(ListWaitersEvent, event)
        return service().list_page(
            request.runId, request.limit, request.nextToken, request.signalName
        )


def mint_links(event: Any) -> dict[str, Any]:
    from flowsignals.lambdas.approvals.schemas import MintLinksEvent  # the links function's only

    with _exactly_invalid_signal_request():
        request = validate(MintLinksEvent, event)
        return approvals().mint(request.runId, request.signalName, request, link_base_url())


def http_only(event: Any) -> Any:
    """The approval pages' function answers browsers only."""
    raise InvalidSignalRequest(
        "the approvals function answers HTTP requests only; mint links with the links function"
    )
