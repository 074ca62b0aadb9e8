"""The deliver function's routes: ``POST /runs/{runId}/signals/{signalName}`` (a payload) and
``POST /runs/{runId}/signals/{signalName}/failure``, delivered as the caller the API's
authorizer vouches for."""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body

from flowsignals.core.models import SignalDeliveryResult, SignalDeliveryStatus, SignalFailure
from flowsignals.lambdas.api.parameters import (
    BufferSecondsQuery,
    IdempotencyKeyHeader,
    RunIdPath,
    SignalNamePath,
)
from flowsignals.lambdas.http.identity import http_caller
from flowsignals.lambdas.http.problems import link, ok, problem, responses
from flowsignals.lambdas.http.resolver import FunctionApi
from flowsignals.lambdas.runtime import service
from flowsignals.lambdas.schemas import (
    BufferedView,
    DeliveredView,
    FailureBody,
    PendingView,
    delivery_result_view,
)
from flowsignals.lambdas.settings import settings

router = Router()  # type: ignore[no-untyped-call]  # Powertools leaves it unannotated

_DELIVERY_ANSWERS = responses(
    HTTPStatus.FORBIDDEN,
    HTTPStatus.NOT_FOUND,
    HTTPStatus.CONFLICT,
    HTTPStatus.GONE,
    HTTPStatus.BAD_REQUEST,
    HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
    ok_model=DeliveredView,
    links={
        "GetWaiter": link(
            "getWaiter", runId="$request.path.runId", stepKey="$response.body#/stepKey"
        )
    },
) | {
    202: {
        "description": "An approval that does not complete the step's quorum yet"
        " (PendingView), or, with bufferSeconds, a signal no step waits for yet, kept for the"
        " next one (BufferedView)",
        "content": {"application/json": {"model": PendingView | BufferedView}},
    }
}


@router.post(
    "/runs/<runId>/signals/<signalName>",
    summary="Deliver a signal to the oldest waiting step",
    operation_id="deliverSignal",
    description=(
        "The body is the payload: any JSON value (I-JSON, at most 262,144 bytes of UTF-8);"
        " an empty body is {}. A retry with the same Idempotency-Key is answered 200 with"
        " replayed=true and delivers nothing more. With bufferSeconds, a signal no step waits"
        " for yet is kept (202) for the next step of that name registered in time."
    ),
    responses=_DELIVERY_ANSWERS,
)
def deliver_signal(
    runId: RunIdPath,
    signalName: SignalNamePath,
    # The resolver reads JSON null as no body: the default keeps null a payload like any other.
    # Any: the resolver has read the body as I-JSON (an array as a tuple), and it is stored as
    # its text.
    payload: Annotated[Any, Body(description="The payload: any JSON value")] = None,
    idempotency_key: IdempotencyKeyHeader = None,
    bufferSeconds: BufferSecondsQuery = None,
) -> Response[str]:
    # The payload is stored as the body's text: the resolver has checked it is I-JSON.
    body = router.current_event.body or "{}"
    return _deliver(runId, signalName, body, None, idempotency_key, bufferSeconds)


@router.post(
    "/runs/<runId>/signals/<signalName>/failure",
    summary="Deliver a failure signal (e.g. a rejection) to the oldest waiting step",
    operation_id="deliverFailure",
    description=(
        "A failure is a delivery like any other (the first of a success and a failure wins);"
        " it resumes a Step Functions task with SendTaskFailure(error, cause), which the state"
        " machine Catches by error name, e.g. Rejected."
    ),
    responses=_DELIVERY_ANSWERS,
)
def deliver_failure(
    runId: RunIdPath,
    signalName: SignalNamePath,
    body: Annotated[FailureBody, Body()],
    idempotency_key: IdempotencyKeyHeader = None,
    bufferSeconds: BufferSecondsQuery = None,
) -> Response[str]:
    return _deliver(runId, signalName, None, body.failure(), idempotency_key, bufferSeconds)


def _deliver(
    run_id: str,
    signal_name: str,
    payload_json: str | None,
    failure: SignalFailure | None,
    idempotency_key: str | None,
    buffer_seconds: int | None,
) -> Response[str]:
    """Either delivery route, as the caller the authorizer vouches for."""
    caller = http_caller(router.current_event.raw_event, settings().jwt_groups_claim)
    result = service().deliver(
        run_id,
        signal_name,
        payload_json,
        failure=failure,
        idempotency_key=idempotency_key,
        delivered_by=caller.delivered_by,
        buffer_seconds=buffer_seconds,
        caller_identities=caller.identities,
    )
    return delivery_response(result)


def delivery_response(result: SignalDeliveryResult) -> Response[str]:
    view = delivery_result_view(result)
    if result.status is SignalDeliveryStatus.DELIVERED:
        return ok(
            DeliveredView(
                stepKey=view["stepKey"], deliveredAt=view["deliveredAt"], replayed=result.replayed
            ).model_dump()
        )
    if result.status is SignalDeliveryStatus.PENDING:
        pending = PendingView(
            stepKey=view["stepKey"],
            approvals=view["approvals"],
            quorum=view["quorum"],
            replayed=result.replayed,
        )
        return ok(pending.model_dump(), HTTPStatus.ACCEPTED)
    if result.status is SignalDeliveryStatus.BUFFERED:
        answer = BufferedView(bufferedUntil=view["expiresAt"], replayed=result.replayed)
        return ok(answer.model_dump(), HTTPStatus.ACCEPTED)
    if result.status is SignalDeliveryStatus.ALREADY_DELIVERED:
        return problem(
            HTTPStatus.CONFLICT,
            "AlreadyDelivered",
            "Every waiter of this signal in the run has already received one.",
            stepKey=view["stepKey"],
            deliveredAt=view["deliveredAt"],
        )
    if result.status is SignalDeliveryStatus.EXPIRED:
        return problem(
            HTTPStatus.GONE,
            "Expired",
            "The waiter of this signal passed its deadline.",
            stepKey=view["stepKey"],
            expiresAt=view["expiresAt"],
        )
    return problem(HTTPStatus.NOT_FOUND, "NotFound", "No step of the run waits for this signal.")


api = FunctionApi(router)
