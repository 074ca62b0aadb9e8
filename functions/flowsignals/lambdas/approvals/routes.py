"""The approval pages over HTTP: ``GET``/``HEAD /approvals/{token}`` show what the link does
and change nothing (a mail scanner fetching every link decides nothing); ``POST`` delivers the
link's action once and shows the outcome. The token is the only credential (the routes are
``Auth: NONE`` and throttled); every answer is an HTML page."""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from flowsignals.core.errors import StoreUnavailable
from flowsignals.core.links import BadLinkToken
from flowsignals.lambdas.approvals.pages import (
    HEADERS,
    approval_page,
    bad_link_page,
    expired_link_page,
    unavailable_page,
    unreadable_page,
)
from flowsignals.lambdas.approvals.service import Approval, LinkExpired
from flowsignals.lambdas.http.events import HttpApiResolver, MalformedEvent, normalize
from flowsignals.lambdas.http.resolver import OwnRoutes
from flowsignals.lambdas.runtime import approvals, logger

app = HttpApiResolver()

# What a client should wait before reloading a page the store could not answer.
RETRY_AFTER_SECONDS = "5"


def _html(page: tuple[HTTPStatus, str], **headers: str) -> Response[str]:
    status, body = page
    return Response(status_code=status, headers=HEADERS | headers, body=body)


def _show(approval: Callable[[str], Approval], token: str) -> Response[str]:
    return _html(approval_page(approval(token)))


def _pages(ok: str) -> dict[int, Any]:
    """The pages a route answers with, for the OpenAPI document."""
    html = {"text/html": {"schema": {"type": "string"}}}
    outcomes = {
        200: ok,
        202: "Approved: the step's quorum needs more approvals (k of n)",
        400: "The request could not be read (a body the page's form never sends)",
        403: "The link is not valid (forged, altered or unknown: no detail), or not its"
        " approver's to decide",
        404: "No step waits for the signal (yet, or any more)",
        409: "Already decided: what, by whom, when",
        410: "The link expired, or the step stopped waiting",
        500: "An internal error: nothing was changed",
        503: "The store is busy: reload shortly (Retry-After)",
    }
    return {status: {"description": words, "content": html} for status, words in outcomes.items()}


_LOOK = "Look at a link: what a click would do. Changes nothing (a mail scanner decides nothing)"
_TOKEN = "/approvals/<token>"


@app.get(
    _TOKEN,
    summary=_LOOK,
    operation_id="showLink",
    responses=_pages("The confirmation page, with its one button"),
)
def show_link(token: str) -> Response[str]:
    return _show(approvals().inspect, token)


@app.head(
    _TOKEN,
    summary=_LOOK,
    operation_id="showLinkHeaders",
    responses=_pages("The confirmation page's headers"),
)
def show_link_head(token: str) -> Response[str]:
    return _show(approvals().inspect, token)  # the body is dropped in handle()


@app.post(
    _TOKEN,
    summary="Click a link: deliver its action once (a repeated click is a replay)",
    operation_id="clickLink",
    responses=_pages("Done: the step received the answer"),
)
def click_link(token: str) -> Response[str]:
    return _show(approvals().decide, token)


@app.exception_handler(BadLinkToken)
def _bad_link(error: BadLinkToken) -> Response[str]:
    return _html(bad_link_page())


@app.exception_handler(LinkExpired)
def _expired_link(error: LinkExpired) -> Response[str]:
    return _html(expired_link_page(error.expired_at))


@app.exception_handler(StoreUnavailable)
def _unavailable(error: StoreUnavailable) -> Response[str]:
    logger.warning("DynamoDB unavailable", extra={"reason": str(error)})
    page = unavailable_page(HTTPStatus.SERVICE_UNAVAILABLE)
    return _html(page, **{"Retry-After": RETRY_AFTER_SECONDS})


@app.not_found
def _no_route(error: Exception) -> Response[str]:
    return _html(bad_link_page())


@app.exception_handler(Exception)
def _internal(error: Exception) -> Response[str]:
    logger.exception("Unhandled error")
    return _html(unavailable_page(HTTPStatus.INTERNAL_SERVER_ERROR))


def handle(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Answer an API Gateway HTTP API (payload 2.0) event for an approval page."""
    try:
        event = normalize(event)
    except MalformedEvent:
        # The page's form sends no body: whatever came is not ours to read.
        status, body = unreadable_page()
        answer: dict[str, Any] = {"statusCode": status, "headers": HEADERS, "body": body}
    else:
        answer = app.resolve(event, context)
    if event.get("requestContext", {}).get("http", {}).get("method") == "HEAD":
        # The headers of the page GET answers, its length included (RFC 9110 §9.3.2).
        length = str(len(str(answer.get("body") or "").encode()))
        answer = {**answer, "headers": answer["headers"] | {"Content-Length": length}, "body": ""}
    return answer


# The approvals function's routes: an event for any other is API Gateway's 404.
api = OwnRoutes(app, handle)
