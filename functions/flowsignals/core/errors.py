"""The exceptions a store raises (every one derives from ``FlowSignalError``), and the one way
pydantic's errors become their message."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


class FlowSignalError(Exception):
    """Base of every flowsignals error; raised alone for configuration faults
    (a missing table, access denied) that retrying cannot fix."""


class InvalidSignalRequest(FlowSignalError, ValueError):
    """Bad input. The message names the field and says why; nothing was written."""


class PayloadTooLarge(InvalidSignalRequest):
    """The payload is over 262,144 bytes of UTF-8."""


class NotAllowedToDecide(FlowSignalError):
    """Waiters of the signal exist, but the caller may decide none of them (its identities
    are not among their deciders). Nothing was written."""


class StoreUnavailable(FlowSignalError):
    """The database (or, for links, Secrets Manager with their key) throttled, failed (5xx)
    or could not be reached after retries, or no time was left for another attempt.

    Nothing was half-written, so a retry never duplicates: a delivery that raises it stored
    nothing (one that buffered but could not finish withdraws its row first, or answers
    ``Buffered`` when it cannot), and a registration's waiter is written again alike.
    From ``flowsignals.client``, a delivery's answer may have been lost after the store
    delivered it: ``idempotency_key`` is the key it was sent under, and a retry with it is
    answered as that delivery (``replayed=True``), never delivered twice."""

    def __init__(self, *args: object, idempotency_key: str | None = None) -> None:
        super().__init__(*args)
        self.idempotency_key = idempotency_key


# Where pydantic says an input came from; the caller knows it by the field's name alone.
_SOURCES = frozenset({"body", "path", "query", "header"})


# A message names at most this many faults, each field name cut to this length: an unknown
# field's name is the caller's input, and may be anything.
_MAX_FAULTS = 10
_MAX_NAME_SHOWN = 64


def describe_errors(errors: Iterable[Mapping[str, Any]]) -> str:
    """Errors as one line: each field as its caller spelt it, and why. Never the input."""
    parts = []
    for error in errors:
        source, *rest = error.get("loc", ()) or ("body",)
        location = [str(part) for part in ([] if source in _SOURCES else [source]) + rest]
        if source == "header":  # HTTP hands header names over lowercased
            location = [name.title() for name in location]
        field = ".".join(name[:_MAX_NAME_SHOWN] for name in location) or "body"
        parts.append(f"{field}: {error.get('msg', 'is invalid')}")
    shown = "; ".join(parts[:_MAX_FAULTS])
    more = len(parts) - _MAX_FAULTS
    return shown + (f"; and {more} more" if more > 0 else "")
