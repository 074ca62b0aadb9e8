"""A function's own HTTP API: a Powertools resolver of the routes that function serves (the
``HttpApi`` events template.yaml gives it), answering errors as RFC 9457 problems. An event for
any other route is answered as API Gateway answers an unknown route, and nothing runs: the
register function, which a state machine may invoke, never delivers, removes or mints."""

from __future__ import annotations

import json
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from flowsignals.core.errors import (
    InvalidSignalRequest,
    NotAllowedToDecide,
    PayloadTooLarge,
    StoreUnavailable,
    describe_errors,
)
from flowsignals.core.values import NotIJson, parse_i_json
from flowsignals.lambdas.http.events import BodyTooLarge, HttpApiResolver, MalformedEvent, normalize
from flowsignals.lambdas.http.problems import bad_request, problem
from flowsignals.lambdas.observability import logger

# API Gateway's own answer to a request no route matches.
_NOT_FOUND_BODY = json.dumps({"message": "Not Found"})
NOT_FOUND = {
    "statusCode": 404,
    "headers": {"Content-Type": "application/json"},
    "body": _NOT_FOUND_BODY,
    "isBase64Encoded": False,
}


def route_keys(resolver: HttpApiResolver) -> frozenset[str]:
    """``"METHOD /path/{name}"`` of each route the resolver holds, as API Gateway spells
    ``routeKey`` (Powertools keeps its routes in these two lists)."""
    routes = resolver._static_routes + resolver._dynamic_routes
    return frozenset(f"{route.method} {route.openapi_path}" for route in routes)


def is_own_route(event: dict[str, Any], own: frozenset[str]) -> bool:
    """Whether API Gateway routed ``event`` to one of ``own``: its ``routeKey``, and the method
    it names, which the resolver matches on."""
    route_key = event.get("routeKey")
    method = event.get("requestContext", {}).get("http", {}).get("method")
    return route_key in own and str(route_key).partition(" ")[0] == method


def _read_body(text: str) -> Any:
    """Request bodies are I-JSON: what the resolver accepts, every later step can encode.

    An array is handed on as a tuple: Powertools takes a list for a parameter's repeated
    values and validates its first element alone, so ``[{"signalName": "go"}, 5]`` would
    register a waiter; a tuple is refused where an object is due."""
    try:
        value = parse_i_json(text)
    except NotIJson as error:
        raise InvalidSignalRequest(f"body: must be I-JSON (RFC 7493): it {error}") from None
    return tuple(value) if isinstance(value, list) else value


class OwnRoutes:
    """A function's HTTP side: ``answer`` for the routes of ``app``, API Gateway's 404 for
    any other (before anything is read or written)."""

    def __init__(
        self,
        app: HttpApiResolver,
        answer: Callable[[dict[str, Any], LambdaContext], dict[str, Any]],
    ) -> None:
        self.app = app
        self.route_keys = route_keys(app)
        self._answer = answer

    def handle(self, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        """Answer an API Gateway HTTP API (payload 2.0) event."""
        if not is_own_route(event, self.route_keys):
            return NOT_FOUND
        return self._answer(event, context)


class FunctionApi(OwnRoutes):
    """The routes of ``routers``, and nothing else, behind one resolver that answers errors
    as problems."""

    def __init__(self, *routers: Router) -> None:
        app = HttpApiResolver(enable_validation=True, json_body_deserializer=_read_body)
        for router in routers:
            app.include_router(router)
        _answer_errors(app)
        super().__init__(app, self._resolve)

    def _resolve(self, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
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
        return self.app.resolve(event, context)


def _answer_errors(app: HttpApiResolver) -> None:
    """Errors become answers here, in one place, for every function's routes."""

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

    @app.exception_handler(NotAllowedToDecide)
    def _not_allowed(error: NotAllowedToDecide) -> Response[str]:
        return problem(
            HTTPStatus.FORBIDDEN,
            "NotAllowed",
            "You may decide none of the run's waiters of this signal: their deciders do not"
            " name you.",
        )

    @app.exception_handler(StoreUnavailable)
    def _unavailable(error: StoreUnavailable) -> Response[str]:
        logger.warning("DynamoDB unavailable", extra={"reason": str(error)})
        return problem(
            HTTPStatus.SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "The store is busy; retry shortly.",
        )

    @app.not_found
    def _no_route(error: Exception) -> Response[str]:
        # An own route key whose path parameters match no route (an empty name): API
        # Gateway's answer, as for any request no route takes.
        return Response(404, "application/json", _NOT_FOUND_BODY)

    @app.exception_handler(Exception)
    def _internal(error: Exception) -> Response[str]:
        logger.exception("Unhandled error")
        return problem(
            HTTPStatus.INTERNAL_SERVER_ERROR, "InternalError", "An internal error occurred."
        )
