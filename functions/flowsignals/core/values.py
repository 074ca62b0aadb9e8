"""The value types of the contract: one vocabulary for every entrance.

Each is a pydantic ``Annotated`` type. The store's argument models (fields named as in Python,
``run_id``) and the request models of the HTTP API and direct invocation (``runId``) are built
from the same types, so every rule is written once, a message names the field as its caller
spelt it, and the OpenAPI document carries each constraint. A message never repeats the
rejected value: inputs may be secrets.
"""

from __future__ import annotations

import functools
import json
import math
import re
import sys
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Annotated, Any, NoReturn
from uuid import UUID

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler, PlainValidator, WithJsonSchema
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

MAX_NAME_LENGTH = 256
MAX_PAYLOAD_BYTES = 262_144
# Deep enough for any real document, shallow enough for every parser and encoder on the read
# path (pydantic stops at 255 levels, Python's json near 1,000).
MAX_JSON_DEPTH = 128
MAX_IDEMPOTENCY_KEY_LENGTH = 128
MAX_TASK_TOKEN_LENGTH = 2048
# The longest a Step Functions task may wait; also keeps now + timeout representable.
MAX_TIMEOUT_SECONDS = 31_536_000
# Step Functions' limits on SendTaskFailure.
MAX_FAILURE_ERROR_LENGTH = 256
MAX_FAILURE_CAUSE_LENGTH = 32_768
MAX_DELIVERED_BY_LENGTH = 512
# The longest an early signal waits for its waiter: 30 days.
MAX_BUFFER_SECONDS = 2_592_000

PAYLOAD_TOO_LARGE = "payload_too_large"

_HEX = "[0-9a-fA-F]"
_UUID_FORMS = re.compile(
    f"{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}|{_HEX}{{32}}"
)
# Unicode category Cc is exactly these two ranges.
_CONTROL_CHARACTER = re.compile("[\x00-\x1f\x7f-\x9f]")
# Lone surrogates cannot be encoded as UTF-8, so no database could store them.
_SURROGATE = re.compile("[\ud800-\udfff]")
_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")
_PRINTABLE_ASCII = re.compile("[\x20-\x7e]+")


def _reject(reason: str, kind: str = "invalid_value") -> NoReturn:
    raise PydanticCustomError(kind, reason)


def _text(value: object) -> str:
    if not isinstance(value, str):
        _reject("must be a string")
    if _SURROGATE.search(value):
        _reject("must be valid Unicode text (it holds a lone surrogate)")
    return value


def _name(value: str, max_length: int = MAX_NAME_LENGTH) -> str:
    if not 1 <= len(value) <= max_length:
        _reject(f"must be 1 to {max_length} characters, got {len(value)}")
    if _CONTROL_CHARACTER.search(value):
        _reject("must not contain control characters")
    return value


@dataclass(frozen=True)
class _JsonSchema:
    """A type's JSON schema, built when a document is generated, never at import (some of its
    patterns come from the Unicode database)."""

    build: Callable[[], dict[str, Any]]

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return self.build()


def _string_schema(description: str, **constraints: str | int | Callable[[], str]) -> _JsonSchema:
    """A string's schema; a constraint given as a function (a pattern) is built with it."""
    return _JsonSchema(
        lambda: {
            "type": "string",
            "description": description,
            **{name: rule() if callable(rule) else rule for name, rule in constraints.items()},
        }
    )


# --- what a text may hold, as JSON Schema patterns -----------------------------------------
# ECMA-262 (JSON Schema's dialect) and Python read these alike: \uXXXX escapes in the Basic
# Multilingual Plane, the characters themselves beyond it.

_CONTROL = "\\u0000-\\u001f\\u007f-\\u009f"


def _class_of(holds: Callable[[str], bool]) -> str:
    """The inside of a regular-expression class of every character ``holds`` is true of."""
    ranges: list[list[int]] = []
    for code in range(sys.maxunicode + 1):
        if holds(chr(code)):
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1][1] = code
            else:
                ranges.append([code, code])

    def written(code: int) -> str:
        return f"\\u{code:04x}" if code <= 0xFFFF else chr(code)

    return "".join(
        written(first) if first == last else f"{written(first)}-{written(last)}"
        for first, last in ranges
    )


@functools.cache
def _whitespace() -> str:
    """What ``str.strip()`` strips."""
    return _class_of(str.isspace)


@functools.cache
def _invisible() -> str:
    """Unicode category Cf: direction marks, zero-width and other invisible characters."""
    return _class_of(lambda character: unicodedata.category(character) == "Cf")


def _no_control() -> str:
    return f"^[^{_CONTROL}]+$"


def _trimmed() -> str:
    """Not starting or ending with whitespace, no control characters."""
    solid = f"[^{_CONTROL}{_whitespace()}]"
    return f"^{solid}(?:[^{_CONTROL}]*{solid})?$"


def _not_only_whitespace(also_refused: str = "") -> str:
    refused = _CONTROL + also_refused
    return f"^[^{refused}]*[^{refused}{_whitespace()}][^{refused}]*$"


def _stripped_name() -> str:
    """1 to MAX_NAME_LENGTH characters without control characters once surrounding whitespace
    (which may hold some) is stripped."""
    space = f"[{_whitespace()}]*"
    solid = f"[^{_CONTROL}{_whitespace()}]"
    return f"^{space}{solid}(?:[^{_CONTROL}]{{0,{MAX_NAME_LENGTH - 2}}}{solid})?{space}$"


def _numbers(low: int, high: int) -> str:
    """A regular expression of the decimal numbers ``low`` to ``high`` (no leading zeros)."""

    def digit_class(first: str, last: str) -> str:
        return first if first == last else f"[{first}-{last}]"

    def of_one_length(low: str, high: str) -> list[str]:
        if not low:
            return [""]
        rest = len(low) - 1
        tail = "[0-9]" + (f"{{{rest}}}" if rest > 1 else "") if rest else ""
        if low[0] == high[0]:
            return [low[0] + form for form in of_one_length(low[1:], high[1:])]
        if low[1:] == "0" * rest and high[1:] == "9" * rest:
            return [digit_class(low[0], high[0]) + tail]
        forms = [low[0] + form for form in of_one_length(low[1:], "9" * rest)]
        if int(high[0]) - int(low[0]) > 1:
            forms.append(digit_class(str(int(low[0]) + 1), str(int(high[0]) - 1)) + tail)
        return forms + [high[0] + form for form in of_one_length("0" * rest, high[1:])]

    forms = []
    for length in range(len(str(low)), len(str(high)) + 1):
        first = str(low) if length == len(str(low)) else "1" + "0" * (length - 1)
        last = str(high) if length == len(str(high)) else "9" * length
        forms += of_one_length(first, last)
    return "|".join(forms)


# --- whole numbers ------------------------------------------------------------------------

_ASCII_DIGITS = re.compile("[0-9]+")
# More digits than any maximum has: such a text is out of range, whatever its value.
_MOST_DIGITS = 20


@dataclass(frozen=True)
class WholeNumber:
    """A count or a duration, 1 to ``maximum`` (None: no limit): one rule for every entrance.

    In JSON it is JSON Schema's integer, a number whose value is whole however it is spelt
    (``60``, ``60.0``, ``6e1``); a boolean, a text (``"60"``) or a fraction is refused, so a
    typo is never read as a number. ``in_query`` is the same number as a query string's
    text: plain ASCII digits, nothing else (no sign, space, point or exponent).
    """

    maximum: int | None
    description: str
    unit: str = ""  # "seconds"
    span: str = ""  # what the maximum means, e.g. " (30 days)"

    def validate(self, value: object) -> int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            _reject("must be a whole number" + (f" of {self.unit}" if self.unit else ""))
        if value < 1 or (self.maximum is not None and value > self.maximum):
            self._out_of_range()
        return value

    def _out_of_range(self) -> NoReturn:
        unit = f" {self.unit}" if self.unit else ""
        if self.maximum is None:
            _reject(f"must be at least 1{unit}")
        _reject(f"must be 1 to {self.maximum}{unit}{self.span}")

    def read_text(self, value: object) -> int:
        if not isinstance(value, str) or not _ASCII_DIGITS.fullmatch(value):
            _reject("must be a whole number in plain ASCII digits 0-9")
        digits = value.lstrip("0")
        if len(digits) > _MOST_DIGITS:
            self._out_of_range()
        return self.validate(int(digits or "0"))

    def json_schema(self) -> dict[str, Any]:
        bounds = {"minimum": 1} | ({} if self.maximum is None else {"maximum": self.maximum})
        return {"type": "integer", **bounds, "description": self.description}

    def __get_pydantic_core_schema__(
        self, source: object, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_plain_validator_function(self.validate)

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return self.json_schema()

    @property
    def in_query(self) -> QueryWholeNumber:
        return QueryWholeNumber(self)


@dataclass(frozen=True)
class QueryWholeNumber:
    """A ``WholeNumber`` given as a query string's text; its OpenAPI schema is the exact
    grammar, so a client never sends a text that is refused, whatever its language writes
    for a number."""

    number: WholeNumber

    def json_schema(self) -> dict[str, Any]:
        maximum = self.number.maximum
        return {
            "type": "string",
            "pattern": "^0*[1-9][0-9]*$" if maximum is None else f"^0*(?:{_numbers(1, maximum)})$",
            "description": f"{self.number.description}: a whole number"
            + ("" if maximum is None else f" 1 to {maximum}")
            + " in plain ASCII digits",
        }

    def __get_pydantic_core_schema__(
        self, source: object, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_plain_validator_function(self.number.read_text)

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return self.json_schema()


# --- names --------------------------------------------------------------------------------


def canonical_run_id(value: object) -> str:
    """A UUID in any spelling becomes its lowercase hyphenated form; any other id is kept."""
    if isinstance(value, UUID):
        return str(value)
    run_id = _text(value)
    if _UUID_FORMS.fullmatch(run_id):
        return str(UUID(run_id))
    _name(run_id)
    if run_id != run_id.strip():
        _reject("must not start or end with whitespace")
    return run_id


def _step_key(value: object) -> str:
    step_key = _name(_text(value))
    if not step_key.strip():
        _reject("must not be only whitespace")
    return step_key


def _signal_name(value: object) -> str:
    return _name(_text(value).strip())


def _idempotency_key(value: object) -> str:
    key = _text(value)
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH:
        _reject(f"must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} characters, got {len(key)}")
    if not _PRINTABLE_ASCII.fullmatch(key):
        _reject("must be printable ASCII")
    return key


def _task_token(value: object) -> str:
    token = _text(value)
    if not 1 <= len(token) <= MAX_TASK_TOKEN_LENGTH:
        _reject(f"must be 1 to {MAX_TASK_TOKEN_LENGTH} characters, got {len(token)}")
    return token


def _failure_error(value: object) -> str:
    return _name(_text(value), MAX_FAILURE_ERROR_LENGTH)


def _failure_cause(value: object) -> str:
    cause = _text(value)
    if len(cause) > MAX_FAILURE_CAUSE_LENGTH:
        _reject(f"must be at most {MAX_FAILURE_CAUSE_LENGTH} characters, got {len(cause)}")
    return cause


def _delivered_by(value: object) -> str:
    by = _text(value)
    if len(by) > MAX_DELIVERED_BY_LENGTH:
        _reject(f"must be at most {MAX_DELIVERED_BY_LENGTH} characters, got {len(by)}")
    if _CONTROL_CHARACTER.search(by):
        _reject("must not contain control characters")
    return by


RunId = Annotated[
    str,
    PlainValidator(canonical_run_id),
    _string_schema(
        "The orchestrator's run id: a UUID (any spelling is one run) or any other id kept as"
        " given, without control characters or surrounding whitespace",
        minLength=1,
        maxLength=MAX_NAME_LENGTH,
        pattern=_trimmed,
    ),
]
StepKey = Annotated[
    str,
    PlainValidator(_step_key),
    _string_schema(
        "The step's key in the run: not only whitespace, no control characters, kept as given",
        minLength=1,
        maxLength=MAX_NAME_LENGTH,
        pattern=_not_only_whitespace,
    ),
]
SignalName = Annotated[
    str,
    PlainValidator(_signal_name),
    _string_schema(
        "The signal's name: surrounding whitespace is stripped, then 1 to"
        f" {MAX_NAME_LENGTH} characters without control characters; matching is exact",
        minLength=1,
        pattern=_stripped_name,
    ),
]
IdempotencyKey = Annotated[
    str,
    PlainValidator(_idempotency_key),
    _string_schema(
        "A retry with the same key is answered as the first delivery, never delivered twice",
        minLength=1,
        maxLength=MAX_IDEMPOTENCY_KEY_LENGTH,
        pattern="^[\\x20-\\x7e]+$",
    ),
]
# HTTP drops a header value's surrounding spaces and tabs (they are not part of it): the
# key is what is left, and one of only spaces arrives empty.
HeaderIdempotencyKey = Annotated[
    str,
    PlainValidator(_idempotency_key),
    _string_schema(
        "A retry with the same key is answered as the first delivery, never delivered twice;"
        f" 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} printable ASCII characters once surrounding"
        " spaces and tabs are dropped",
        pattern="^[ \\t]*[\\x21-\\x7e](?:[\\x20-\\x7e]{0,"
        + str(MAX_IDEMPOTENCY_KEY_LENGTH - 2)
        + "}[\\x21-\\x7e])?[ \\t]*$",
    ),
]
TaskToken = Annotated[
    str,
    PlainValidator(_task_token),
    _string_schema(
        "A Step Functions task token, resumed when the waiter is delivered",
        minLength=1,
        maxLength=MAX_TASK_TOKEN_LENGTH,
    ),
]


FailureError = Annotated[
    str,
    PlainValidator(_failure_error),
    _string_schema(
        "The error a state machine Catches by name, e.g. Rejected",
        minLength=1,
        maxLength=MAX_FAILURE_ERROR_LENGTH,
        pattern=_no_control,
    ),
]
FailureCause = Annotated[
    str,
    PlainValidator(_failure_cause),
    _string_schema("Why, in words", maxLength=MAX_FAILURE_CAUSE_LENGTH),
]
DeliveredBy = Annotated[
    str,
    PlainValidator(_delivered_by),
    _string_schema(
        "Who delivered, without control characters",
        maxLength=MAX_DELIVERED_BY_LENGTH,
        pattern=f"^[^{_CONTROL}]*$",
    ),
]


# --- who may decide -----------------------------------------------------------------------

MAX_DECIDERS = 20
MAX_QUORUM = 10
MAX_IDENTITY_LENGTH = 512
MAX_CALLER_IDENTITIES = 64
DECIDER_KINDS = ("email", "sub", "group", "iam")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")
# An IAM user or role (any path), or a session of an assumed role.
_IAM_PRINCIPAL = re.compile(
    r"arn:(aws[a-z-]*):(?:iam::([0-9]{12}):(user|role)/(?:[^/]+/)*([^/]+)"
    r"|sts::([0-9]{12}):assumed-role/([^/]+)/([^/]+))"
)


def _iam(value: str, *, session: bool) -> str:
    """An IAM user or role ARN without its path (names are unique in an account, and a
    session's ARN never shows the path); with ``session``, an assumed role's session too."""
    match = _IAM_PRINCIPAL.fullmatch(value)
    if match is None or (match[5] is not None and not session):
        kinds = "an IAM user or role ARN" + (" or an assumed-role session ARN" if session else "")
        _reject(f"iam: must be {kinds}, e.g. arn:aws:iam::123456789012:role/Approvers")
    partition, account, kind, name = match[1], match[2], match[3], match[4]
    if account is None:
        return f"arn:{partition}:sts::{match[5]}:assumed-role/{match[6]}/{match[7]}"
    return f"arn:{partition}:iam::{account}:{kind}/{name}"


def _identity(value: object, *, session: bool) -> str:
    """``kind:value``, in the one spelling that compares equal to any other of it."""
    text = _text(value)
    kind, colon, rest = text.partition(":")
    if not colon or kind not in DECIDER_KINDS:
        _reject(f"must be kind:value with kind one of {', '.join(DECIDER_KINDS)}")
    _name(rest, MAX_IDENTITY_LENGTH)
    if rest != rest.strip():
        _reject("must not start or end with whitespace after the kind")
    if kind == "email":
        if not _EMAIL.fullmatch(rest):
            _reject("email: must be an e-mail address, e.g. email:ana@example.com")
        rest = rest.lower()  # as every mail system treats it
    elif kind == "iam":
        rest = _iam(rest, session=session)
    return f"{kind}:{rest}"


def _decider(value: object) -> str:
    return _identity(value, session=False)


def caller_identity(value: object) -> str:
    return _identity(value, session=True)


def assumed_role(identity: str) -> str | None:
    """The role an assumed-role session identity (``iam:arn:...:assumed-role/R/S``) acts as:
    a decider naming the role matches every session of it."""
    match = _IAM_PRINCIPAL.fullmatch(identity.removeprefix("iam:"))
    if not identity.startswith("iam:") or match is None or match[5] is None:
        return None
    return f"iam:arn:{match[1]}:iam::{match[5]}:role/{match[6]}"


def _unique(values: list[str], what: str) -> tuple[str, ...]:
    if len(set(values)) != len(values):
        _reject(f"must not name one {what} twice")
    return tuple(values)


def _deciders(value: object) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        _reject(f"must be a list of up to {MAX_DECIDERS} entries kind:value")
    if len(value) > MAX_DECIDERS:
        _reject(f"must be at most {MAX_DECIDERS} entries, got {len(value)}")
    return _unique([_decider(entry) for entry in value], "decider")


def _caller_identities(value: object) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        _reject("must be a list of identities kind:value")
    if len(value) > MAX_CALLER_IDENTITIES:
        _reject(f"must be at most {MAX_CALLER_IDENTITIES} identities, got {len(value)}")
    return _unique([caller_identity(entry) for entry in value], "identity")


@functools.cache
def _changed_by_lower() -> str:
    return _class_of(lambda character: character.lower() != character)


def _identity_schemas(*, session: bool) -> list[dict[str, Any]]:
    """One schema per kind: what ``_identity`` takes (its value at most MAX_IDENTITY_LENGTH),
    in the spelling it keeps, so that distinct strings are distinct identities: JSON Schema's
    uniqueItems cannot compare ``email:Ana@x`` with ``email:ana@x``."""
    solid = f"[^{_CONTROL}{_whitespace()}]"
    segment = f"[^/{_CONTROL}]"
    last = f"{segment}*[^/{_CONTROL}{_whitespace()}]"
    iam = f"arn:aws[a-z-]*:iam::[0-9]{{12}}:(?:user|role)/{last}"
    if session:
        iam = f"(?:{iam}|arn:aws[a-z-]*:sts::[0-9]{{12}}:assumed-role/{segment}+/{last})"
    address = f"[^@{_CONTROL}{_whitespace()}{_changed_by_lower()}]+"
    values = {
        "email": f"{address}@{address}",
        "sub": f"{solid}(?:[^{_CONTROL}]*{solid})?",
        "group": f"{solid}(?:[^{_CONTROL}]*{solid})?",
        "iam": iam,
    }
    return [
        {
            "type": "string",
            "pattern": f"^{kind}:{values[kind]}$",
            "maxLength": len(kind) + 1 + MAX_IDENTITY_LENGTH,
        }
        for kind in DECIDER_KINDS
    ]


def _identities_schema(most: int, description: str, *, session: bool) -> _JsonSchema:
    return _JsonSchema(
        lambda: {
            "type": "array",
            "maxItems": most,
            "uniqueItems": True,
            "items": {"anyOf": _identity_schemas(session=session)},
            "description": description + "; no identity twice. Given as they are kept:"
            " e-mail addresses in lowercase, IAM ARNs without their path (other spellings are"
            " taken too, and kept so)",
        }
    )


Deciders = Annotated[
    tuple[str, ...],
    PlainValidator(_deciders),
    _identities_schema(
        MAX_DECIDERS,
        "Who may decide: email:<verified address>, sub:<JWT subject>, group:<JWT group>,"
        " iam:<IAM user or role ARN>. Empty: anyone allowed on the route",
        session=False,
    ),
]
CallerIdentities = Annotated[
    tuple[str, ...],
    PlainValidator(_caller_identities),
    _identities_schema(
        MAX_CALLER_IDENTITIES,
        "The caller's identities (kind:value); the first names the caller among a quorum's"
        " approvers",
        session=True,
    ),
]
QUORUM = WholeNumber(MAX_QUORUM, "How many distinct deciders must approve (default 1)")
Quorum = Annotated[int, QUORUM]


def reachable_quorum_schema() -> dict[str, Any]:
    """``reachable_quorum`` in JSON Schema: no deciders, or at least as many as the quorum."""
    return {
        "anyOf": [
            {"properties": {"deciders": {"maxItems": 0}}},
            *(
                {"properties": {"quorum": {"maximum": count}, "deciders": {"minItems": count}}}
                for count in range(1, MAX_QUORUM + 1)
            ),
        ]
    }


# What "not given" means for a field: absent or null, or absent only.
ABSENT_OR_NULL: dict[str, Any] = {"type": "null"}
ABSENT = False


def not_both(**not_given: dict[str, Any] | bool) -> dict[str, Any]:
    """JSON Schema of an object in which at least one of these fields is not given."""
    return {"anyOf": [{"properties": {name: schema}} for name, schema in not_given.items()]}


def reachable_quorum(quorum: int, deciders: object) -> int:
    """A quorum larger than the deciders named could never be reached (a field validator's
    check, with the deciders validated before it)."""
    if isinstance(deciders, tuple) and deciders and quorum > len(deciders):
        raise PydanticCustomError(
            "quorum_too_large",
            "must be at most the number of deciders named ({count})",
            {"count": len(deciders)},
        )
    return quorum


# --- approval links -----------------------------------------------------------------------

MAX_APPROVER_LENGTH = 256
MAX_LINK_PAYLOAD_BYTES = 4096
DEFAULT_LINK_SECONDS = 259_200  # 3 days
MAX_LINK_SECONDS = 2_592_000  # 30 days
_ACTION_NAME = re.compile("[A-Za-z0-9_-]{1,32}")


def _action_name(value: object) -> str:
    name = _text(value)
    if not _ACTION_NAME.fullmatch(name):
        _reject("must be 1 to 32 letters, digits, '-' or '_'")
    return name


def _shown_text(value: object) -> str:
    shown = _name(_text(value), MAX_APPROVER_LENGTH)
    # Text shown to the person deciding must read as it is: no direction overrides or
    # invisible characters (Unicode category Cf) that make a button say something else.
    if any(unicodedata.category(character) == "Cf" for character in shown):
        _reject("must not contain invisible formatting characters (direction marks, zero-width)")
    if not shown.strip():
        _reject("must not be only whitespace")
    return shown


ActionName = Annotated[
    str,
    PlainValidator(_action_name),
    _string_schema("An action of a link, e.g. approve", pattern="^[A-Za-z0-9_-]{1,32}$"),
]
_SHOWN_TEXT_RULES = (
    ": not only whitespace, no control characters, no invisible formatting characters"
    " (Unicode category Cf: direction marks, zero-width)"
)
ActionLabel = Annotated[
    str,
    PlainValidator(_shown_text),
    _string_schema(
        "The button's words, e.g. Approve" + _SHOWN_TEXT_RULES,
        minLength=1,
        maxLength=MAX_APPROVER_LENGTH,
        pattern=lambda: _not_only_whitespace(_invisible()),
    ),
]
Approver = Annotated[
    str,
    PlainValidator(_shown_text),
    _string_schema(
        "Who is asked to decide: shown on the page, recorded as deliveredBy" + _SHOWN_TEXT_RULES,
        minLength=1,
        maxLength=MAX_APPROVER_LENGTH,
        pattern=lambda: _not_only_whitespace(_invisible()),
    ),
]
LINK_SECONDS = WholeNumber(
    MAX_LINK_SECONDS,
    f"Seconds the links work (default {DEFAULT_LINK_SECONDS}, 3 days)",
    "seconds",
    " (30 days)",
)
LinkSeconds = Annotated[int, LINK_SECONDS]

# --- instants -----------------------------------------------------------------------------


def to_utc_ms(value: datetime) -> datetime:
    """An aware datetime in UTC, truncated to the millisecond."""
    if value.utcoffset() is None:
        _reject("must be timezone-aware (a naive datetime has no defined instant)")
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        _reject("is out of the representable range in UTC")
    return utc.replace(microsecond=utc.microsecond // 1000 * 1000)


# RFC 3339's date-time, as JSON Schema's format "date-time" reads it: T and Z in either case,
# any number of fraction digits, a leap second (:60) where it falls at 23:59 UTC.
_DATE_TIME = re.compile(
    "([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:[.]([0-9]+))?"
    "(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))"
)
# Whatever its offset, an instant of these years is one a datetime holds in UTC.
FIRST_YEAR, LAST_YEAR = 2, 9998


def read_date_time(text: str) -> datetime:
    """An RFC 3339 date-time (``2026-11-23T10:15:30Z``, ``…+02:00``) as an aware datetime; a
    leap second is kept as the last millisecond before the next minute."""
    match = _DATE_TIME.fullmatch(text)
    if match is None:
        _reject("must be an RFC 3339 date-time with a UTC offset, e.g. 2026-11-23T10:15:30Z")
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    fraction, sign, offset_hours, offset_minutes = match[7], match[8], match[9], match[10]
    if not FIRST_YEAR <= year <= LAST_YEAR:
        _reject(f"must be in the years {FIRST_YEAR:04} to {LAST_YEAR}")
    offset = timedelta(0)
    if sign is not None:
        if int(offset_hours) > 23 or int(offset_minutes) > 59:
            _reject("is not a valid date-time (its offset is out of range)")
        offset = timedelta(hours=int(offset_hours), minutes=int(offset_minutes))
    microsecond = int((fraction or "")[:6].ljust(6, "0"))
    try:
        instant = datetime(
            year,
            month,
            day,
            hour,
            minute,
            min(second, 59),
            microsecond,
            timezone(-offset if sign == "-" else offset),
        )
    except ValueError:
        _reject("is not a valid date-time")
    if second == 60:
        if instant.astimezone(UTC).strftime("%H:%M") != "23:59":
            _reject("is not a valid date-time (a leap second falls at 23:59 UTC)")
        instant = instant.replace(microsecond=999_000)
    return instant


def _deadline(value: object) -> datetime:
    # A number, or a numeric string, is not read as epoch seconds: a typo must not register
    # a deadline in 1970.
    if isinstance(value, str):
        value = read_date_time(value)
    if not isinstance(value, datetime):
        _reject("must be an RFC 3339 date-time with a UTC offset, e.g. 2026-11-23T10:15:30Z")
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        _reject(f"must be in the years {FIRST_YEAR:04} to {LAST_YEAR}")
    return to_utc_ms(value)


def _buffer_for(value: object) -> timedelta:
    if not isinstance(value, timedelta):
        _reject("must be a timedelta")
    if not timedelta(milliseconds=1) <= value <= timedelta(seconds=MAX_BUFFER_SECONDS):
        _reject("must be 1 millisecond to 30 days")
    # Whole milliseconds, as every stored instant: now + buffer_for is then one deadline.
    return value - timedelta(microseconds=value.microseconds % 1000)


Deadline = Annotated[
    datetime,
    PlainValidator(_deadline),
    _string_schema(
        f"An instant with a UTC offset (RFC 3339) in the years {FIRST_YEAR:04} to {LAST_YEAR};"
        " it may lie in the past",
        format="date-time",
        pattern=lambda: f"^0*(?:{_numbers(FIRST_YEAR, LAST_YEAR)})-",
    ),
]
TIMEOUT_SECONDS = WholeNumber(
    MAX_TIMEOUT_SECONDS, "Seconds from now until the waiter expires", "seconds"
)
TimeoutSeconds = Annotated[int, TIMEOUT_SECONDS]
BUFFER_SECONDS = WholeNumber(
    MAX_BUFFER_SECONDS,
    "When no step waits yet, keep the signal this long (seconds) for the next one",
    "seconds",
    " (30 days)",
)
BufferSeconds = Annotated[int, BUFFER_SECONDS]
BufferSecondsText = Annotated[int, BUFFER_SECONDS.in_query]

# --- pages ----------------------------------------------------------------------------------

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 50
PAGE_LIMIT = WholeNumber(MAX_PAGE_SIZE, f"Waiters per page (default {DEFAULT_PAGE_SIZE})")
PageLimit = Annotated[int, PAGE_LIMIT]
PageLimitText = Annotated[int, PAGE_LIMIT.in_query]
# The Python API's pages have no upper bound.
StoreLimit = Annotated[int, WholeNumber(None, "At most this many waiters")]
BufferFor = Annotated[timedelta, PlainValidator(_buffer_for)]


def format_timestamp(value: datetime) -> str:
    """``2026-11-23T10:15:30.123Z``: fixed width, so the strings sort as the instants do."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_timestamp(value: str) -> datetime:
    return datetime.fromisoformat(value)


# --- payloads: I-JSON (RFC 7493) ----------------------------------------------------------


class NotIJson(ValueError):
    """A text that is not I-JSON; the message says why, never what."""


def _finite(text: str) -> float:
    number = float(text)  # never fails on a valid JSON number: too large is inf
    if math.isinf(number):
        raise NotIJson("holds a number beyond the range of an IEEE double")
    return number


def _integer(text: str) -> int:
    _finite(text)  # so int() below has at most 309 digits: far from its digit limit
    return int(text)


def _not_a_number(name: str) -> NoReturn:
    raise NotIJson(f"holds {name}, which is not JSON")


def _unique_names(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    names = dict(pairs)
    if len(names) != len(pairs):
        raise NotIJson("repeats a name within one object")
    return names


def _check_structure(value: Any, has_escaped_surrogate: bool) -> None:
    """Nesting depth and escaped lone surrogates, walked without recursion."""
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            if has_escaped_surrogate and _SURROGATE.search(item):
                raise NotIJson("holds a lone surrogate (\\ud800-\\udfff) in a string")
        elif isinstance(item, dict | list):
            if depth >= MAX_JSON_DEPTH:
                raise NotIJson(f"nests deeper than {MAX_JSON_DEPTH} levels")
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children)


def parse_i_json(text: str) -> Any:
    """The value of an I-JSON text (RFC 7493), or ``NotIJson`` saying what breaks the rules.

    What passes can be stored, read back and encoded again by every interface as the same
    value: numbers fit an IEEE double, strings are valid Unicode, names are unique in each
    object, and nesting stays within ``MAX_JSON_DEPTH``.
    """
    if _SURROGATE.search(text):
        raise NotIJson("holds a lone surrogate")
    try:
        value = json.loads(
            text,
            parse_constant=_not_a_number,
            parse_float=_finite,
            parse_int=_integer,
            object_pairs_hook=_unique_names,
        )
    except RecursionError:
        raise NotIJson(f"nests deeper than {MAX_JSON_DEPTH} levels") from None
    except json.JSONDecodeError as error:
        raise NotIJson(f"is not JSON ({error.msg} at character {error.pos})") from None
    escaped_surrogate = _ESCAPED_SURROGATE.search(text) is not None
    if escaped_surrogate or text.count("[") + text.count("{") > MAX_JSON_DEPTH:
        _check_structure(value, escaped_surrogate)
    return value


def _payload_json(value: object) -> str:
    payload = _text(value)
    size = len(payload.encode("utf-8"))
    if size > MAX_PAYLOAD_BYTES:
        _reject(
            f"{size} bytes of UTF-8 is over the limit of {MAX_PAYLOAD_BYTES}", PAYLOAD_TOO_LARGE
        )
    try:
        parse_i_json(payload)
    except NotIJson as error:
        _reject(f"must be I-JSON (RFC 7493): it {error}")
    return payload


def _payload_value(value: object) -> str:
    """A JSON value given as data (direct invocation), as the text the store keeps."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (ValueError, TypeError, RecursionError):
        _reject("must be a JSON value of finite numbers, strings, lists and objects")
    return _payload_json(text)


PayloadJson = Annotated[
    str,
    PlainValidator(_payload_json),
    _string_schema(f"An I-JSON text (RFC 7493) of at most {MAX_PAYLOAD_BYTES} bytes of UTF-8"),
]
PayloadValue = Annotated[
    str,
    PlainValidator(_payload_value),
    WithJsonSchema({"description": "Any JSON value (I-JSON, RFC 7493); default {}"}),
]


def _link_payload_value(value: object) -> str:
    payload = _payload_value(value)
    if (size := len(payload.encode("utf-8"))) > MAX_LINK_PAYLOAD_BYTES:
        _reject(f"{size} bytes of UTF-8 is over a link's limit of {MAX_LINK_PAYLOAD_BYTES}")
    return payload


LinkPayloadValue = Annotated[
    str,
    PlainValidator(_link_payload_value),
    WithJsonSchema(
        {"description": f"What a click delivers: {MAX_LINK_PAYLOAD_BYTES} bytes of JSON"}
    ),
]


def read_payload(text: str) -> Any:
    """A stored payload as its JSON value. Every payload accepted is I-JSON; a row written
    before the store checked that (``1e400``, an escaped lone surrogate) reads back as its
    text, as a JSON string with lone surrogates replaced, so it never breaks a read."""
    try:
        return parse_i_json(text)
    except NotIJson:
        return _SURROGATE.sub("\ufffd", text)
