"""RFC 9457 problem answers (``application/problem+json``) and plain JSON answers."""

import json
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import Response
from pydantic import BaseModel

from flowsignals.lambdas.schemas import PROBLEM_JSON, GatewayMessage, Problem

RETRY_AFTER_SECONDS = "1"

_TITLES = {
    "InvalidRequest": "Invalid request",
    "NotFound": "Not found",
    "NotAllowed": "Not allowed to decide",
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


def bad_request(detail: str) -> Response[str]:
    return problem(HTTPStatus.BAD_REQUEST, "InvalidRequest", detail)


def ok(body: dict[str, Any], status: HTTPStatus = HTTPStatus.OK) -> Response[str]:
    return Response(int(status), "application/json", json.dumps(body, ensure_ascii=False))


def link(operation_id: str, **parameters: str) -> dict[str, Any]:
    """An OpenAPI link: an operation a client may call next, with values from this exchange
    (``$request.path.runId``, ``$response.body#/stepKey``)."""
    return {"operationId": operation_id, "parameters": parameters}


def responses(
    *statuses: HTTPStatus,
    ok_model: type[BaseModel] | None = None,
    links: dict[str, Any] | None = None,
) -> dict[int, Any]:
    """The OpenAPI answers of a route of the IAM API: its success model (and what may follow
    it), its problems, and API Gateway's 403 to a request without a valid signature."""
    answers: dict[int, Any] = {}
    if ok_model is not None:
        answers[200] = {
            "description": "OK",
            "content": {"application/json": {"model": ok_model}},
        } | ({"links": links} if links else {})
    for status in (*statuses, HTTPStatus.SERVICE_UNAVAILABLE, HTTPStatus.INTERNAL_SERVER_ERROR):
        answers[int(status)] = {
            "description": status.phrase,
            "content": {PROBLEM_JSON: {"model": Problem}},
        }
    forbidden = answers.setdefault(403, {"description": "Forbidden", "content": {}})
    forbidden["description"] += (
        ": a problem (NotAllowed), or" if HTTPStatus.FORBIDDEN in statuses else ":"
    ) + " no valid SigV4 signature (API Gateway's own JSON answer)"
    forbidden["content"]["application/json"] = {"model": GatewayMessage}
    return answers
