"""The value rules of the contract (SPEC section 1, "Values") and the timestamp format.

Each check takes what a caller passed, returns the value the store keeps, and raises
``InvalidSignalRequest`` naming the field and the reason. Stores run every check before
any I/O, so a rejected request never writes anything.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import NamedTuple, NoReturn
from uuid import UUID

from flowsignals.errors import InvalidSignalRequest, PayloadTooLarge

MAX_NAME_LENGTH = 256
MAX_PAYLOAD_BYTES = 262_144
MAX_IDEMPOTENCY_KEY_LENGTH = 128
MAX_TASK_TOKEN_LENGTH = 2048

_HEX = "[0-9a-fA-F]"
_RUN_ID_FORMS = re.compile(
    f"{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}|{_HEX}{{32}}"
)
# Unicode category Cc is exactly these two ranges.
_CONTROL_CHARACTER = re.compile("[\x00-\x1f\x7f-\x9f]")
# Lone surrogates cannot be encoded as UTF-8, so no database could store them.
_SURROGATE = re.compile("[\ud800-\udfff]")
_PRINTABLE_ASCII = re.compile("[\x20-\x7e]+")


def _reject(field: str, reason: str) -> NoReturn:
    raise InvalidSignalRequest(f"{field}: {reason}")


def _require_str(field: str, value: object) -> str:
    if not isinstance(value, str):
        _reject(field, f"must be a string, not {type(value).__name__}")
    if _SURROGATE.search(value):
        _reject(field, "must be valid Unicode text (it holds a lone surrogate)")
    return value


def _check_name(field: str, value: str) -> str:
    if not 1 <= len(value) <= MAX_NAME_LENGTH:
        _reject(field, f"must be 1 to {MAX_NAME_LENGTH} characters, got {len(value)}")
    if _CONTROL_CHARACTER.search(value):
        _reject(field, "must not contain control characters")
    return value


def parse_run_id(value: object) -> UUID:
    """A ``UUID``, or its 36-character hyphenated or 32-hex-digit string form in any case."""
    if isinstance(value, UUID):
        return value
    if not isinstance(value, str):
        _reject("run_id", f"must be a UUID or its string form, not {type(value).__name__}")
    if not _RUN_ID_FORMS.fullmatch(value):
        _reject("run_id", "must be a UUID: 36 characters with hyphens or 32 hex digits")
    return UUID(value)


def check_step_key(value: object) -> str:
    """1-256 characters, not only whitespace, no control characters; kept as given."""
    step_key = _check_name("step_key", _require_str("step_key", value))
    if not step_key.strip():
        _reject("step_key", "must not be only whitespace")
    return step_key


def normalize_signal_name(value: object) -> str:
    """Surrounding whitespace stripped, then 1-256 characters, no control characters."""
    return _check_name("signal_name", _require_str("signal_name", value).strip())


def _reject_non_json_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def check_payload_json(value: object) -> str:
    """A JSON text per RFC 8259 of at most 262,144 bytes of UTF-8."""
    payload = _require_str("payload_json", value)
    size = len(payload.encode("utf-8"))
    if size > MAX_PAYLOAD_BYTES:
        raise PayloadTooLarge(
            f"payload_json: {size} bytes of UTF-8 is over the limit of {MAX_PAYLOAD_BYTES}"
        )
    try:
        # parse_int=str: RFC 8259 numbers have no digit limit, Python's int() has.
        json.loads(payload, parse_constant=_reject_non_json_constant, parse_int=str)
    except (ValueError, RecursionError) as error:
        _reject("payload_json", f"is not a JSON text (RFC 8259): {error}")
    return payload


def check_idempotency_key(value: object) -> str | None:
    """None, or 1-128 printable ASCII characters."""
    if value is None:
        return None
    key = _require_str("idempotency_key", value)
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH:
        _reject(
            "idempotency_key",
            f"must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} characters, got {len(key)}",
        )
    if not _PRINTABLE_ASCII.fullmatch(key):
        _reject("idempotency_key", "must be printable ASCII")
    return key


def check_task_token(value: object) -> str | None:
    """None, or 1-2048 characters."""
    if value is None:
        return None
    token = _require_str("task_token", value)
    if not 1 <= len(token) <= MAX_TASK_TOKEN_LENGTH:
        _reject("task_token", f"must be 1 to {MAX_TASK_TOKEN_LENGTH} characters, got {len(token)}")
    return token


def to_utc_ms(value: object, field: str) -> datetime:
    """An aware datetime, in UTC, truncated to the millisecond."""
    if not isinstance(value, datetime):
        _reject(field, f"must be a datetime, not {type(value).__name__}")
    if value.utcoffset() is None:
        _reject(field, "must be timezone-aware (a naive datetime has no defined instant)")
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        _reject(field, "is out of the representable range in UTC")
    return utc.replace(microsecond=utc.microsecond // 1000 * 1000)


def check_expires_at(value: object) -> datetime | None:
    """None, or an aware datetime (past instants allowed)."""
    return None if value is None else to_utc_ms(value, "expires_at")


def format_timestamp(value: datetime) -> str:
    """``2026-11-23T10:15:30.123Z``: fixed width, so the strings sort as the instants do."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_timestamp(value: str) -> datetime:
    return datetime.fromisoformat(value)


def epoch_seconds(value: datetime) -> int:
    return int(value.timestamp())


# --- each operation's arguments, checked in one order for every backend -------------------


class Registration(NamedTuple):
    run: UUID
    step_key: str
    signal_name: str
    expires_at: datetime | None
    task_token: str | None


class Delivery(NamedTuple):
    run: UUID
    signal_name: str
    payload_json: str
    idempotency_key: str | None


def check_registration(
    run_id: object, step_key: object, signal_name: object, expires_at: object, task_token: object
) -> Registration:
    return Registration(
        parse_run_id(run_id),
        check_step_key(step_key),
        normalize_signal_name(signal_name),
        check_expires_at(expires_at),
        check_task_token(task_token),
    )


def check_delivery(
    run_id: object, signal_name: object, payload_json: object, idempotency_key: object
) -> Delivery:
    return Delivery(
        parse_run_id(run_id),
        normalize_signal_name(signal_name),
        check_payload_json(payload_json),
        check_idempotency_key(idempotency_key),
    )


def check_waiter_key(run_id: object, step_key: object) -> tuple[UUID, str]:
    return parse_run_id(run_id), check_step_key(step_key)
