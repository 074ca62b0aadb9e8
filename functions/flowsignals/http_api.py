"""The HTTP API (SPEC section 3): one Powertools resolver with the five routes, store errors
mapped to RFC 9457 problem+json in one place (the exception handlers below)."""

from __future__ import annotations

import base64
import binascii
import json
import re
from http import HTTPStatus
from typing import Annotated, Any
from urllib.parse import quote

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from flowsignals.errors import InvalidSignalRequest, PayloadTooLarge, StoreUnavailable
from flowsignals.models import SignalDeliveryResult, SignalDeliveryStatus
from flowsignals.runtime import logger, metrics, store, utc_now
from flowsignals.schemas import (
    DeliveredView,
    RegisterWaiterBody,
    WaiterList,
    WaiterView,
    delivery_result_view,
    describe_errors,
    waiter_view,
)

PROBLEM_JSON = "application/problem+json"
RETRY_AFTER_SECONDS = "1"
_ROUTE_PARAMETER = re.compile(r"\{(\w+)\+?\}")


class Problem(BaseModel):
    """An RFC 9457 problem; 409 adds stepKey/deliveredAt, 410 stepKey/expiresAt."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    code: str
    stepKey: str | None = None
    deliveredAt: str | None = None
    expiresAt: str | None = None


_TITLES = {
    "InvalidRequest": "Invalid request",
    "NotFound": "Not found",
    "AlreadyDelivered": "Signal already delivered",
    "Expired": "Waiter expired",
    "PayloadTooLarge": "Payload too large",
    "ServiceUnavailable": "Service unavailable",
    "InternalError": "Internal error",
}


def problem(status: HTTPStatus, code: str, detail: str, **extra: str | None) -> Response[str]:
    body = {"type": "about:blank", "title": _TITLES[code], "status": int(status)}
    body |= {"detail": detail, "code": code, **extra}
    headers = (
        {"Retry-After": RETRY_AFTER_SECONDS} if status is HTTPStatus.SERVICE_UNAVAILABLE else None
    )
    return Response(int(status), PROBLEM_JSON, json.dumps(body, ensure_ascii=False), headers)


def ok(body: dict[str, Any]) -> Response[str]:
    return Response(200, "application/json", json.dumps(body, ensure_ascii=False))


def _responses(*statuses: HTTPStatus, ok_model: type[BaseModel] | None = None) -> dict[int, Any]:
    responses: dict[int, Any] = {}
    if ok_model is not None:
        responses[200] = {
            "description": "OK",
            "content": {"application/json": {"model": ok_model}},
        }
    for status in (*statuses, HTTPStatus.SERVICE_UNAVAILABLE, HTTPStatus.INTERNAL_SERVER_ERROR):
        responses[int(status)] = {
            "description": status.phrase,
            "content": {PROBLEM_JSON: {"model": Problem}},
        }
    return responses


app = APIGatewayHttpResolver(enable_validation=True)


def _path(name: str) -> str:
    """A path parameter as API Gateway decoded it: the authority for names (SPEC section 3)."""
    return str(app.current_event.path_parameters[name])


@app.put(
    "/runs/<runId>/waiters/<stepKey>",
    summary="Register (or update) the waiter of a step",
    responses=_responses(HTTPStatus.BAD_REQUEST, ok_model=WaiterView),
)
def register_waiter(
    runId: str, stepKey: str, body: Annotated[RegisterWaiterBody, Body()]
) -> Response[str]:
    now = utc_now()
    waiter = store().register_waiter(
        _path("runId"),
        _path("stepKey"),
        body.signalName,
        body.deadline(now),
        task_token=body.taskToken,
    )
    metrics.add_metric(name="WaiterRegistered", unit=MetricUnit.Count, value=1)
    return ok(waiter_view(waiter, now))


@app.get(
    "/runs/<runId>/waiters/<stepKey>",
    summary="Read one waiter",
    responses=_responses(HTTPStatus.NOT_FOUND, HTTPStatus.BAD_REQUEST, ok_model=WaiterView),
)
def get_waiter(runId: str, stepKey: str) -> Response[str]:
    waiter = store().get_waiter(_path("runId"), _path("stepKey"))
    if waiter is None:
        return problem(
            HTTPStatus.NOT_FOUND, "NotFound", "The run has no waiter with this step key."
        )
    return ok(waiter_view(waiter, utc_now()))


@app.delete(
    "/runs/<runId>/waiters/<stepKey>",
    summary="Remove a waiter (removing a missing waiter is not an error)",
    responses={204: {"description": "Removed"}, **_responses(HTTPStatus.BAD_REQUEST)},
)
def remove_waiter(runId: str, stepKey: str) -> Response[str]:
    store().remove_waiter(_path("runId"), _path("stepKey"))
    return Response(204, None, "")


@app.get(
    "/runs/<runId>/waiters",
    summary="All waiters of a run, oldest first",
    responses=_responses(HTTPStatus.BAD_REQUEST, ok_model=WaiterList),
)
def list_waiters(runId: str) -> Response[str]:
    now = utc_now()
    waiters = store().list_waiters(_path("runId"))
    return ok({"waiters": [waiter_view(waiter, now) for waiter in waiters]})


@app.post(
    "/runs/<runId>/signals/<signalName>",
    summary="Deliver a signal (any JSON body; empty = {}) to the oldest waiting step",
    description="A retry with the same Idempotency-Key header is answered 200 with replayed=true.",
    responses=_responses(
        HTTPStatus.NOT_FOUND,
        HTTPStatus.CONFLICT,
        HTTPStatus.GONE,
        HTTPStatus.BAD_REQUEST,
        HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        ok_model=DeliveredView,
    ),
)
def deliver_signal(runId: str, signalName: str) -> Response[str]:
    event = app.current_event
    body = event.body or ""
    result = store().deliver_signal(
        _path("runId"),
        _path("signalName"),
        body if body.strip() else "{}",
        idempotency_key=event.headers.get("idempotency-key"),
    )
    metrics.add_metric(name=f"Signal{result.status.value}", unit=MetricUnit.Count, value=1)
    return delivery_response(result)


def delivery_response(result: SignalDeliveryResult) -> Response[str]:
    view = delivery_result_view(result)
    if result.status is SignalDeliveryStatus.DELIVERED:
        return ok(
            {
                "delivered": True,
                "stepKey": view["stepKey"],
                "deliveredAt": view["deliveredAt"],
                "replayed": view["replayed"],
            }
        )
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
    return problem(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "PayloadTooLarge", str(error))


@app.exception_handler(InvalidSignalRequest)
def _invalid_request(error: InvalidSignalRequest) -> Response[str]:
    return problem(HTTPStatus.BAD_REQUEST, "InvalidRequest", str(error))


@app.exception_handler([RequestValidationError, RequestUnsupportedContentType])
def _invalid_body(error: RequestValidationError) -> Response[str]:
    return problem(HTTPStatus.BAD_REQUEST, "InvalidRequest", describe_errors(error.errors()))


@app.exception_handler(StoreUnavailable)
def _unavailable(error: StoreUnavailable) -> Response[str]:
    logger.warning("DynamoDB unavailable after retries", extra={"reason": str(error)})
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


# --- the event as the resolver reads it ----------------------------------------------------


def _bad_request(detail: str) -> dict[str, Any]:
    body = problem(HTTPStatus.BAD_REQUEST, "InvalidRequest", detail)
    return {
        "statusCode": body.status_code,
        "headers": {"Content-Type": PROBLEM_JSON},
        "body": body.body,
        "isBase64Encoded": False,
    }


def handle(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Answer an API Gateway HTTP API (payload 2.0) event.

    Routing follows ``routeKey`` and ``pathParameters``, not the decoded ``rawPath`` (which is
    ambiguous once a name holds ``/``): the path the resolver matches is rebuilt from them,
    each parameter percent-encoded. A base64 body is decoded here, once. Every body is read
    as JSON whatever its Content-Type, so no form or multipart parser ever runs.
    """
    event = dict(event)
    event["headers"] = {
        name: value
        for name, value in (event.get("headers") or {}).items()
        if name.lower() != "content-type"
    }
    _, _, template = str(event.get("routeKey", "")).partition(" ")
    parameters = event.get("pathParameters") or {}
    if "{" in template:
        event["rawPath"] = _ROUTE_PARAMETER.sub(
            lambda match: quote(str(parameters.get(match[1], "")), safe=""), template
        )
    if event.get("isBase64Encoded") and event.get("body") is not None:
        try:
            event["body"] = base64.b64decode(event["body"], validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return _bad_request("body: is not valid base64-encoded UTF-8")
        event["isBase64Encoded"] = False
    return app.resolve(event, context)
