"""Pages of a run's waiters: opaque, tamper-evident ``nextToken`` values, and a size budget
that keeps every page, serialised as the Lambda response, under 5 MB whatever the payloads
(Lambda refuses a response over 6 MB)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterable
from typing import Any

from flowsignals.core.errors import InvalidSignalRequest
from flowsignals.core.store import WaiterPosition
from flowsignals.core.values import format_timestamp, parse_timestamp

MAX_RESPONSE_BYTES = 5_000_000
# The envelope around the waiters: statusCode, headers, {"waiters": [...], "nextToken": ...}.
_ENVELOPE_BYTES = 8_192
# A token proves it was issued by flowsignals for this run and was not edited. It grants
# nothing beyond a position in a run the caller may list anyway, so the key need not be secret.
_TOKEN_KEY = b"flowsignals page token v1"
_BAD_TOKEN = "nextToken: is not a token this API issued for this listing"


# What a token is for: a run's waiters, or its waiters of one signal name.
Listing = tuple[str, str | None]


def _sign(listing: Listing, body: bytes) -> bytes:
    run_id, signal_name = listing
    # Neither a run id nor a signal name holds a NUL, nor does the JSON body.
    scope = run_id if signal_name is None else f"{run_id}\0{signal_name}"
    return hmac.new(_TOKEN_KEY, scope.encode() + b"\0" + body, hashlib.sha256).digest()[:16]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(data) != text:  # one spelling only: unused trailing bits may not vary either
        raise ValueError("not canonical base64")
    return data


def encode_token(listing: Listing, position: WaiterPosition) -> str:
    created_at, step_key = position
    # UTF-8, not ASCII escapes: a 256-character step key stays under 1 KB in the token.
    body = json.dumps([format_timestamp(created_at), step_key], ensure_ascii=False).encode()
    return f"{_b64(body)}.{_b64(_sign(listing, body))}"


def decode_token(listing: Listing, token: str) -> WaiterPosition:
    """The position a token of this listing names, or ``InvalidSignalRequest`` for any other
    text (a token of another run's listing, or of another signal's, included)."""
    try:
        body_text, _, signature = token.partition(".")
        body = _unb64(body_text)
        if not hmac.compare_digest(_unb64(signature), _sign(listing, body)):
            raise ValueError("not signed for this listing")
        created_at, step_key = json.loads(body)
        return parse_timestamp(created_at), str(step_key)
    except (ValueError, TypeError):  # binascii and Unicode errors are ValueErrors too
        raise InvalidSignalRequest(_BAD_TOKEN) from None


def _response_bytes(view: dict[str, Any]) -> int:
    """An upper bound of the view's bytes in a Lambda response: the HTTP body holds it as JSON
    text, which the Lambda runtime encodes once more (ASCII-escaped) inside its own JSON."""
    return len(json.dumps(json.dumps(view, ensure_ascii=False))) + 1


def fit_page(views: Iterable[dict[str, Any]]) -> tuple[list[dict[str, Any]], bool]:
    """The leading views that fit the response budget (at least one: a single waiter is at
    most a 256 KiB payload), and whether any were left out."""
    page: list[dict[str, Any]] = []
    budget = MAX_RESPONSE_BYTES - _ENVELOPE_BYTES
    for view in views:
        budget -= _response_bytes(view)
        if page and budget < 0:
            return page, True
        page.append(view)
    return page, False
