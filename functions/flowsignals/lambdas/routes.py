"""The HTTP API: one Powertools resolver with its routes. Each route takes its path
parameters, body, headers and query as typed values (so the resolver validates them and the
OpenAPI document shows every rule), calls the service, and shapes the answer. Errors become
RFC 9457 problems in one place, the exception handlers below."""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Path, Query
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import JsonValue

from flowsignals.core.errors import (
    InvalidSignalRequest,
    PayloadTooLarge,
    StoreUnavailable,
    describe_errors,
)
from flowsignals.core.models import SignalDeliveryResult, SignalDeliveryStatus, SignalFailure
from flowsignals.core.values import (
    BufferSeconds,
    IdempotencyKey,
    NotIJson,
    RunId,
    SignalName,
    StepKey,
    parse_i_json,
)
from flowsignals.lambdas.http_events import (
    BodyTooLarge,
    HttpApiResolver,
    MalformedEvent,
    caller,
    normalize,
)
from flowsignals.lambdas.problems import bad_request, ok, problem, responses
from flowsignals.lambdas.runtime import logger, service
from flowsignals.lambdas.schemas import (
    DEFAULT_PAGE_SIZE,
    BufferedView,
    DeliveredView,
    FailureBody,
    NextToken,
    PageLimit,
    RegisterWaiterBody,
    RegisterWaiterEvent,
    SignalList,
    WaiterPage,
    WaiterView,
    delivery_result_view,
)


def _read_body(text: str) -> Any:
    """Request bodies are I-JSON: what the resolver accepts, every later step can encode."""
    try:
        return parse_i_json(text)
    except NotIJson as error:
        raise InvalidSignalRequest(f"body: must be I-JSON (RFC 7493): it {error}") from None


app = HttpApiResolver(enable_validation=True, json_body_deserializer=_read_body)

RunIdPath = Annotated[RunId, Path(description="The run id (URL-encoded)")]
StepKeyPath = Annotated[StepKey, Path(description="The step key (URL-encoded)")]
SignalNamePath = Annotated[SignalName, Path(description="The signal name (URL-encoded)")]


@app.put(
    "/runs/<runId>/waiters/<stepKey>",
    summary="Register (or update) the waiter of a step",
    responses=responses(HTTPStatus.BAD_REQUEST, ok_model=WaiterView),
)
def register_waiter(
    runId: RunIdPath, stepKey: StepKeyPath, body: Annotated[RegisterWaiterBody, Body()]
) -> Response[str]:
    request = RegisterWaiterEvent(runId=runId, stepKey=stepKey, **body.model_dump())
    # A caller of the API may neither hand a task token in nor take a stored one away.
    return ok(service().register(request, keep_task_token=True))


@app.get(
    "/runs/<runId>/waiters/<stepKey>",
    summary="Read one waiter",
    responses=responses(HTTPStatus.NOT_FOUND, HTTPStatus.BAD_REQUEST, ok_model=WaiterView),
)
def get_waiter(runId: RunIdPath, stepKey: StepKeyPath) -> Response[str]:
    view = service().get(runId, stepKey)
    if view is None:
        return problem(
            HTTPStatus.NOT_FOUND, "NotFound", "The run has no waiter with this step key."
        )
    return ok(view)


@app.delete(
    "/runs/<runId>/waiters/<stepKey>",
    summary="Remove a waiter (removing a missing waiter is not an error)",
    responses={204: {"description": "Removed", "content": {}}, **responses(HTTPStatus.BAD_REQUEST)},
)
def remove_waiter(runId: RunIdPath, stepKey: StepKeyPath) -> Response[str]:
    service().remove(runId, stepKey)
    return Response(204, None, "")


@app.get(
    "/runs/<runId>/waiters",
    summary="The waiters of a run (or of one signal), oldest first, a page at a time",
    description=(
        "With signalName, only the waiters of that signal name, read from the table's"
        " global index RunId-SignalName-index: eventually consistent, so a waiter registered"
        " or renamed a moment ago may be missing (never listed under a name it no longer"
        " has). Without it, every waiter of the run, strongly consistent."
    ),
    responses=responses(HTTPStatus.BAD_REQUEST, ok_model=WaiterPage),
)
def list_waiters(
    runId: RunIdPath,
    limit: Annotated[PageLimit, Query()] = DEFAULT_PAGE_SIZE,
    nextToken: Annotated[NextToken | None, Query()] = None,
    signalName: Annotated[SignalName | None, Query()] = None,
) -> Response[str]:
    return ok(service().list_page(runId, limit, nextToken, signalName))


_DELIVERY_ANSWERS = responses(
    HTTPStatus.NOT_FOUND,
    HTTPStatus.CONFLICT,
    HTTPStatus.GONE,
    HTTPStatus.BAD_REQUEST,
    HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
    ok_model=DeliveredView,
) | {
    202: {
        "description": "No step waits yet: the signal is kept for the next one (bufferSeconds)",
        "content": {"application/json": {"model": BufferedView}},
    }
}
IdempotencyKeyHeader = Annotated[
    IdempotencyKey | None,
    Header(alias="Idempotency-Key", description="A retry with the same key delivers nothing more"),
]
BufferSecondsQuery = Annotated[BufferSeconds | None, Query()]


@app.post(
    "/runs/<runId>/signals/<signalName>",
    summary="Deliver a signal to the oldest waiting step",
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
    payload: Annotated[JsonValue, Body(description="The payload: any JSON value")] = None,
    idempotency_key: IdempotencyKeyHeader = None,
    bufferSeconds: BufferSecondsQuery = None,
) -> Response[str]:
    # The payload is stored as the body's text: the resolver has checked it is I-JSON.
    body = app.current_event.body or "{}"
    return _deliver(runId, signalName, body, None, idempotency_key, bufferSeconds)


@app.post(
    "/runs/<runId>/signals/<signalName>/failure",
    summary="Deliver a failure signal (e.g. a rejection) to the oldest waiting step",
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
    result = service().deliver(
        run_id,
        signal_name,
        payload_json,
        failure=failure,
        idempotency_key=idempotency_key,
        delivered_by=caller(app.current_event.raw_event),
        buffer_seconds=buffer_seconds,
    )
    return delivery_response(result)


@app.get(
    "/runs/<runId>/signals",
    summary="The run's early signals that wait for a step, oldest first",
    responses=responses(HTTPStatus.BAD_REQUEST, ok_model=SignalList),
)
def list_signals(runId: RunIdPath) -> Response[str]:
    return ok(service().list_buffered(runId))


def delivery_response(result: SignalDeliveryResult) -> Response[str]:
    view = delivery_result_view(result)
    if result.status is SignalDeliveryStatus.DELIVERED:
        return ok(
            DeliveredView(
                stepKey=view["stepKey"], deliveredAt=view["deliveredAt"], replayed=result.replayed
            ).model_dump()
        )
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


# --- errors: the one place they become answers -------------------------------------------


@app.exception_handler(PayloadTooLarge)
def _payload_too_large(error: PayloadTooLarge) -> Response[str]:
    # Over HTTP the payload is the body.
    detail = str(error).replace("payload_json:", "body:", 1)
    return problem(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "PayloadTooLarge", detail)


@app.exception_handler(InvalidSignalRequest)
def _invalid_request(error: InvalidSignalRequest) -> Response[str]:
    return bad_request(str(error))


@app.exception_handler([RequestValidationError, RequestUnsupportedContentType])
def _invalid_body(error: RequestValidationError) -> Response[str]:
    return bad_request(describe_errors(error.errors()))


@app.exception_handler(StoreUnavailable)
def _unavailable(error: StoreUnavailable) -> Response[str]:
    logger.warning("DynamoDB unavailable", extra={"reason": str(error)})
    return problem(
        HTTPStatus.SERVICE_UNAVAILABLE, "ServiceUnavailable", "The store is busy; retry shortly."
    )


@app.not_found
def _no_route(error: Exception) -> Response[str]:
    # API Gateway routes only matching requests here; a stray event (an empty name) is a 404.
    return problem(HTTPStatus.NOT_FOUND, "NotFound", "No route matches this request.")


@app.exception_handler(Exception)
def _internal(error: Exception) -> Response[str]:
    logger.exception("Unhandled error")
    return problem(HTTPStatus.INTERNAL_SERVER_ERROR, "InternalError", "An internal error occurred.")


def handle(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Answer an API Gateway HTTP API (payload 2.0) event."""
    try:
        event = normalize(event)
    except MalformedEvent as error:
        answer = (
            problem(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "PayloadTooLarge", str(error))
            if isinstance(error, BodyTooLarge)
            else bad_request(str(error))
        )
        return {
            "statusCode": answer.status_code,
            "headers": answer.headers,
            "body": answer.body,
            "isBase64Encoded": False,
        }
    return app.resolve(event, context)
