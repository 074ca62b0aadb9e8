"""Which events are API Gateway HTTP API requests, and the form in which the resolver reads
them."""

from __future__ import annotations

import base64
import binascii
import re
from re import Match
from typing import Any
from urllib.parse import quote

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

_ROUTE_PARAMETER = re.compile(r"\{(\w+)\+?\}")


# No request needs more: a payload is at most 256 KiB, a failure's cause 32,768 characters.
# A larger body is refused before it is parsed, which would cost seconds and memory.
MAX_BODY_BYTES = 1_048_576


class MalformedEvent(ValueError):
    """An HTTP API event whose body cannot be read; the message says why."""


class BodyTooLarge(MalformedEvent):
    """A body over ``MAX_BODY_BYTES``."""


class HttpApiResolver(APIGatewayHttpResolver):
    """Powertools' resolver, with API Gateway's decoded ``pathParameters`` as the authority for
    names: the matched path holds them percent-encoded (see ``normalize``)."""

    def __init__(self, **options: Any) -> None:
        # Never in Powertools' debug mode, whatever POWERTOOLS_DEV says: it prints each whole
        # event (approval link tokens, payloads) and answers tracebacks.
        super().__init__(**options, debug=False)

    def _convert_matches_into_route_keys(self, match: Match[str]) -> dict[str, str]:
        parameters = self.current_event.path_parameters or {}
        return {name: parameters.get(name, "") for name in match.groupdict()}


def is_http_api_event(event: object) -> bool:
    """A well-formed API Gateway HTTP API (payload format 2.0) event. Anything else is a
    direct invocation, whatever keys it has (``{"requestContext": null}`` included)."""
    if not isinstance(event, dict) or event.get("version") != "2.0":
        return False
    context = event.get("requestContext")
    http = context.get("http") if isinstance(context, dict) else None
    return (
        isinstance(http, dict)
        and isinstance(http.get("method"), str)
        and isinstance(event.get("routeKey"), str)
        and isinstance(event.get("rawPath"), str)
        and isinstance(event.get("rawQueryString", ""), str)
        and isinstance(event.get("body") or "", str)
        and isinstance(event.get("isBase64Encoded", False), bool)
        and all(_text_map(event.get(name)) for name in _TEXT_MAPS)
        and _text_list(event.get("cookies"))
    )


# The parts of an HTTP API event that API Gateway sends as maps of text to text.
_TEXT_MAPS = ("headers", "pathParameters", "queryStringParameters", "stageVariables")


def _text_map(value: object) -> bool:
    return value is None or (
        isinstance(value, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
    )


def _text_list(value: object) -> bool:
    return value is None or (isinstance(value, list) and all(isinstance(v, str) for v in value))


def normalize(event: dict[str, Any]) -> dict[str, Any]:
    """The event as the resolver reads it.

    - Routing follows ``routeKey`` and ``pathParameters``, not the decoded ``rawPath`` (which
      is ambiguous once a name holds ``/``): the path to match is rebuilt from them, each
      parameter percent-encoded; the route's arguments are the decoded parameters.
    - A base64 body is decoded here, once; an empty body reads as ``{}``.
    - Every body is read as JSON whatever its Content-Type, so no form or multipart parser
      ever runs.
    """
    event = dict(event)
    event["headers"] = {
        name: value
        for name, value in (event.get("headers") or {}).items()
        if name.lower() != "content-type"
    }
    _, _, template = str(event["routeKey"]).partition(" ")
    parameters = event.get("pathParameters") or {}
    if "{" in template:
        event["rawPath"] = _ROUTE_PARAMETER.sub(
            # surrogatepass: a name that is not valid Unicode reaches validation (a 400).
            lambda match: quote(str(parameters.get(match[1], "")), safe="", errors="surrogatepass"),
            template,
        )
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            body = base64.b64decode(body, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise MalformedEvent("body: is not valid base64-encoded UTF-8") from None
        event["isBase64Encoded"] = False
    if (
        len(body) > MAX_BODY_BYTES // 4
        and len(body.encode(errors="surrogatepass")) > MAX_BODY_BYTES
    ):
        raise BodyTooLarge(f"body: is over the limit of {MAX_BODY_BYTES} bytes")
    event["body"] = body if body.strip() else "{}"
    return event
