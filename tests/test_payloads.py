"""Payloads are I-JSON (RFC 7493) at every entrance, proven by property:

- every I-JSON text (every Unicode plane, the whole range of a double, nesting up to the
  limit) is accepted by the Python API of every backend, by the HTTP API and by direct
  invocation, and reads back over every interface as the same JSON value;
- every text that breaks I-JSON (NaN, overflowing numbers, lone surrogates, repeated names,
  nesting past the limit, trailing garbage) is ``InvalidSignalRequest``, a 400 problem over
  HTTP (never a 5xx), and writes nothing;
- rows written before the rule existed never break a read, on moto and on DynamoDB Local.
"""

from __future__ import annotations

import functools
import json
import math
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from conftest import TABLE_NAME, Backend, reset_runtime
from flowsignals import (
    DynamoDBFlowSignalStore,
    FlowSignalStore,
    InvalidSignalRequest,
    SignalDeliveryStatus,
)
from flowsignals.testing import FakeLambdaContext, http_api_event
from template_yaml import load_handler

GET = "GET /runs/{runId}/waiters/{stepKey}"
LIST = "GET /runs/{runId}/waiters"
DELIVER = "POST /runs/{runId}/signals/{signalName}"
PROBLEM = "application/problem+json"

# The contract's limits, written out rather than imported: a change of the product's
# constants must fail here, not move the tests along with it.
MAX_JSON_DEPTH = 128
MAX_PAYLOAD_BYTES = 262_144

# The largest integer a double holds after rounding: one below the midpoint between DBL_MAX
# and 2**1024, which rounds (to even) up to infinity.
LARGEST_FINITE_INTEGER = 2**1024 - 2**970 - 1
OVERFLOWING_INTEGER = 2**1024 - 2**970
_SURROGATE = re.compile("[\ud800-\udfff]")


def examples(count: int) -> settings:
    """Hypothesis settings for a property over function-scoped fixtures (a store, a runtime)."""
    return settings(
        max_examples=count,
        deadline=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
        ],
    )


# --- the oracle: JSON values compared as JSON, bodies parsed strictly ----------------------


def assert_same_json(actual: Any, expected: Any) -> None:
    """Equal as JSON values: the same types (a bool is not a number, 1 is not 1.0), integers
    exactly, floats by value (so -0.0 equals 0.0), objects regardless of member order. Walked
    without recursion: values nest up to the limit."""
    pending: list[tuple[Any, Any, str]] = [(actual, expected, "$")]
    while pending:
        got, want, path = pending.pop()
        assert type(got) is type(want), f"{path}: {type(got).__name__} != {type(want).__name__}"
        if isinstance(want, dict):
            assert got.keys() == want.keys(), f"{path}: names differ"
            pending.extend((got[name], want[name], f"{path}[{name!r}]") for name in want)
        elif isinstance(want, list):
            assert len(got) == len(want), f"{path}: {len(got)} items != {len(want)}"
            pairs = enumerate(zip(got, want, strict=True))
            pending.extend((g, w, f"{path}[{i}]") for i, (g, w) in pairs)
        else:
            assert got == want, f"{path}: {got!r} != {want!r}"


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    number = float(text)
    if math.isinf(number):
        raise ValueError("a number beyond the range of a double")
    return number


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    members = dict(pairs)
    if len(members) != len(pairs):
        raise ValueError("a repeated name")
    return members


def strict_loads(text: str) -> Any:
    """A body any JSON client reads: valid UTF-8, no NaN or Infinity, finite numbers, integers
    Python reads (at most 4,300 digits), unique names."""
    text.encode("utf-8")
    return json.loads(
        text, parse_constant=_no_constant, parse_float=_finite_float, object_pairs_hook=_unique
    )


def as_lambda_returns(result: Any) -> Any:
    """A direct invocation's result as its caller receives it: the Lambda runtime encodes it as
    JSON (no NaN, valid UTF-8), and the caller decodes that."""
    return strict_loads(json.dumps(result, allow_nan=False, ensure_ascii=False))


def depth(value: Any) -> int:
    """Nesting depth: a scalar is 0, ``[]`` is 1, ``[[1]]`` is 2."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, level = pending.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level + 1)
            children = item.values() if isinstance(item, dict) else item
            pending.extend((child, level + 1) for child in children)
    return deepest


def _short(text: str) -> str:
    return repr(text) if len(text) <= 120 else f"{text[:100]!r}... ({len(text)} characters)"


# --- the interfaces -----------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    content_type: str
    text: str

    def json(self) -> Any:
        return strict_loads(self.text)


# The handler template.yaml names for a route or function (read once: parsing it is slow).
handler = functools.cache(load_handler)


def http(route: str, parameters: dict[str, str], **request: Any) -> Answer:
    """Call the handler template.yaml names for the route with an HTTP API v2 event."""
    raw = handler(route)(http_api_event(route, parameters, **request), FakeLambdaContext())
    headers = {name.lower(): value for name, value in raw.get("headers", {}).items()}
    return Answer(raw["statusCode"], str(headers.get("content-type", "")), raw.get("body") or "")


def invoke(function: str, event: Any) -> Any:
    """Call the function template.yaml names as a direct invocation."""
    return handler(function)(event, FakeLambdaContext())


def register(run: str) -> None:
    invoke("RegisterFunction", {"runId": run, "stepKey": "s", "signalName": "go"})


def assert_undelivered_everywhere(run: str, client: Any) -> None:
    """The waiter ``s`` of ``run`` is as registered: over HTTP, direct invocation, in its row."""
    read = http(GET, {"runId": run, "stepKey": "s"})
    assert read.status == 200, read.text
    assert read.json()["state"] == "Waiting" and read.json()["payload"] is None
    direct = invoke("GetFunction", {"runId": run, "stepKey": "s"})
    assert direct["deliveredAt"] is None and direct["payload"] is None
    row = client.get_item(
        TableName=TABLE_NAME, Key={"RunId": {"S": run}, "StepKey": {"S": "s"}}, ConsistentRead=True
    )["Item"]
    assert "PayloadJson" not in row and "DeliveredAt" not in row


# --- I-JSON values and their texts --------------------------------------------------------

TRICKY_TEXTS = [
    "",
    "\\",
    '"',
    "\\ud800",  # a backslash, then "ud800": text, not an escape
    "\\udfff\\",
    "\\u0041",
    "\x00",
    "\x1f",
    "\x7f",
    "\u0085",
    "\u2028\u2029",
    "\ufeff",
    "\ufffe\uffff",
    "\U0001f600",
    "\U0010ffff",
    "\U000e0001",
    "e\u0301 \u00e9",
    "</script>",
    "NaN",
    "Infinity",
    "1e400",
]
texts = st.one_of(
    st.text(st.characters(exclude_categories=["Cs"]), max_size=24),
    st.sampled_from(TRICKY_TEXTS),
)
integers = st.one_of(
    st.integers(),
    st.integers(min_value=-int(sys.float_info.max), max_value=int(sys.float_info.max)),
    st.builds(lambda m, e: m * 10**e, st.integers(-(10**16), 10**16), st.integers(0, 292)),
    st.sampled_from(
        [
            2**53,
            2**53 + 1,
            -(2**63),
            2**64,
            10**308,
            int(sys.float_info.max),
            LARGEST_FINITE_INTEGER,
            -LARGEST_FINITE_INTEGER,
        ]
    ),
)
floats = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, allow_subnormal=True),
    st.sampled_from(
        [
            5e-324,
            -5e-324,
            sys.float_info.min,
            sys.float_info.max,
            -sys.float_info.max,
            -0.0,
            0.1,
            1e22,
            1e-7,
            2.0**53,
        ]
    ),
)
scalars = st.one_of(st.none(), st.booleans(), integers, floats, texts)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(texts, children, max_size=5)
    ),
    max_leaves=24,
)


@st.composite
def deep_values(draw: st.DrawFn) -> Any:
    """A value wrapped in lists and one-member objects until it nests 1 to 128 levels deep."""
    value = draw(json_values)
    target = draw(st.one_of(st.integers(1, MAX_JSON_DEPTH), st.just(MAX_JSON_DEPTH)))
    kinds = draw(st.lists(st.booleans(), min_size=1, max_size=6))
    name = draw(texts)
    for level in range(max(0, target - depth(value))):
        value = [value] if kinds[level % len(kinds)] else {name: value}
    return value


values = st.one_of(json_values, deep_values())


@dataclass(frozen=True)
class Document:
    """A JSON value and one I-JSON text of it."""

    value: Any = field(repr=False)
    text: str

    def __repr__(self) -> str:
        return f"Document({_short(self.text)})"


@st.composite
def documents(draw: st.DrawFn, of: st.SearchStrategy[Any] = values) -> Document:
    """A value serialised as any JSON encoder might: ASCII-escaped or not, any separators and
    indentation, members in any order, whitespace around."""
    value = draw(of)
    text = json.dumps(
        value,
        ensure_ascii=draw(st.booleans()),
        indent=draw(st.sampled_from([None, 0, 1, 2, "\t", "\r\n "])),
        separators=draw(st.sampled_from([None, (",", ":"), (" , ", " : "), (",\n", ":\t")])),
        sort_keys=draw(st.booleans()),
        allow_nan=False,
    )
    space = st.sampled_from(["", " ", "\n", "\t\r\n "])
    text = draw(space) + text + draw(space)
    assume(len(text.encode("utf-8")) <= MAX_PAYLOAD_BYTES)
    return Document(value, text)


def nested_lists(levels: int) -> Any:
    value: Any = []
    for _ in range(levels - 1):
        value = [value]
    return value


EDGE_DOCUMENTS = [
    Document(nested_lists(MAX_JSON_DEPTH), "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH),
    Document(LARGEST_FINITE_INTEGER, str(LARGEST_FINITE_INTEGER)),
    Document(-(10**308), "-1" + "0" * 308),
    Document(sys.float_info.max, "1.7976931348623158e308"),  # rounds down to DBL_MAX
    Document(0.0, "1e-400"),  # underflows to zero: finite
    Document(5e-324, "4.9406564584124654E-324"),
    Document(100.0, "1.0E+2"),
    Document(-0.0, "-0.0"),
    Document(0, "-0"),
    Document(["\U0001f600", "/", "é"], '["\\ud83d\\ude00", "\\/", "\\u00E9"]'),
    Document({"\\ud800": "\\"}, '{"\\\\ud800": "\\\\"}'),
    Document({"a": {"a": {}}, "": [None]}, ' {"a":{"a":{}},"":[null]}\r\n'),
]


# --- 1. the Python API of every backend ---------------------------------------------------


def assert_accepted_and_read_back(store: FlowSignalStore, document: Document) -> None:
    run = uuid4()
    store.register_waiter(run, "s", "go")
    result = store.deliver_signal(run, "go", document.text)
    assert result.status is SignalDeliveryStatus.DELIVERED and result.step_key == "s"

    expected = json.loads(document.text)
    assert_same_json(expected, document.value)  # the oracle itself
    waiter = store.get_waiter(run, "s")
    assert waiter is not None and waiter.payload_json is not None
    assert_same_json(json.loads(waiter.payload_json), expected)
    (listed,) = store.list_waiters(run)
    assert listed.payload_json is not None
    assert_same_json(json.loads(listed.payload_json), expected)


@examples(60)
@given(document=documents())
def test_every_i_json_text_is_accepted_and_read_back_by_every_backend(
    backend: Backend, document: Document
) -> None:
    assert_accepted_and_read_back(backend.store, document)


@pytest.mark.parametrize("document", EDGE_DOCUMENTS, ids=repr)
def test_the_edges_of_i_json_are_accepted_and_read_back_by_every_backend(
    backend: Backend, document: Document
) -> None:
    assert_accepted_and_read_back(backend.store, document)


# --- 2. the HTTP API and direct invocation, on moto ----------------------------------------


@examples(30)
@given(document=documents(), as_bytes=st.booleans())
@example(document=EDGE_DOCUMENTS[0], as_bytes=False)
@example(document=EDGE_DOCUMENTS[1], as_bytes=True)
@example(document=EDGE_DOCUMENTS[9], as_bytes=False)
def test_an_http_body_reads_back_over_http_and_direct_invocation(
    fresh_runtime: Any, document: Document, as_bytes: bool
) -> None:
    run = str(uuid4())
    register(run)
    body = document.text.encode() if as_bytes else document.text
    delivered = http(DELIVER, {"runId": run, "signalName": "go"}, body=body)
    assert delivered.status == 200, delivered.text
    expected = json.loads(document.text)

    read = http(GET, {"runId": run, "stepKey": "s"})
    assert read.status == 200 and read.content_type == "application/json"
    assert read.json()["state"] == "Delivered"
    assert_same_json(read.json()["payload"], expected)

    listed = http(LIST, {"runId": run})
    assert listed.status == 200 and listed.content_type == "application/json"
    assert [w["stepKey"] for w in listed.json()["waiters"]] == ["s"]
    assert_same_json(listed.json()["waiters"][0]["payload"], expected)

    got = as_lambda_returns(invoke("GetFunction", {"runId": run, "stepKey": "s"}))
    assert_same_json(got["payload"], expected)
    page = as_lambda_returns(invoke("ListFunction", {"runId": run}))
    assert_same_json(page["waiters"][0]["payload"], expected)


@examples(30)
@given(value=values)
@example(value=EDGE_DOCUMENTS[0].value)
@example(value=LARGEST_FINITE_INTEGER)
@example(value=None)
def test_a_direct_payload_reads_back_over_http_and_direct_invocation(
    fresh_runtime: Any, value: Any
) -> None:
    run = str(uuid4())
    register(run)
    result = invoke("DeliverFunction", {"runId": run, "signalName": "go", "payload": value})
    assert result["status"] == "Delivered", result

    read = http(GET, {"runId": run, "stepKey": "s"})
    assert read.status == 200 and read.content_type == "application/json"
    assert_same_json(read.json()["payload"], value)
    got = as_lambda_returns(invoke("GetFunction", {"runId": run, "stepKey": "s"}))
    assert_same_json(got["payload"], value)


# --- 3. hostile texts -----------------------------------------------------------------------


class _NoValue:
    def __repr__(self) -> str:
        return "NO_VALUE"


NO_VALUE: Any = _NoValue()


@dataclass(frozen=True)
class Hostile:
    """A text that is not I-JSON, and the same payload as JSON data when a direct caller can
    hand it over (as the Lambda runtime decodes an event: NaN and 1e400 become floats, an
    escaped lone surrogate a lone surrogate); repeated names and garbage have no such form."""

    kind: str
    text: str
    value: Any = field(default=NO_VALUE, repr=False)

    def __repr__(self) -> str:
        return f"Hostile({self.kind!r}, {_short(self.text)})"


small_documents = documents(json_values)
plain_texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=8)


def _encoded(text: str, ascii_only: bool) -> str:
    """A string's JSON text without its quotes."""
    return json.dumps(text, ensure_ascii=ascii_only)[1:-1]


def _escape_every_character(name: str) -> str:
    units = name.encode("utf-16-be")
    return '"' + "".join(f"\\u{units[i : i + 2].hex()}" for i in range(0, len(units), 2)) + '"'


@st.composite
def not_a_number(draw: st.DrawFn) -> Hostile:
    text = draw(st.sampled_from(["NaN", "Infinity", "-Infinity"]))
    return Hostile("NaN/Infinity", text, float(text))


OVERFLOWING_NUMBERS: list[tuple[str, Any]] = [
    ("1e400", math.inf),
    ("-1e400", -math.inf),
    ("1.8e308", math.inf),
    ("1.7976931348623159e308", math.inf),  # past the midpoint to 2**1024
    ("1E309", math.inf),
    (str(OVERFLOWING_INTEGER), OVERFLOWING_INTEGER),
    (str(-OVERFLOWING_INTEGER), -OVERFLOWING_INTEGER),
    ("9" * 400, 10**400 - 1),
    ("1" + "0" * 4300, 10**4300),  # past Python's int() digit limit as well
]


@st.composite
def overflow(draw: st.DrawFn) -> Hostile:
    kind = "overflowing number"
    choice = draw(st.integers(0, 3))
    if choice == 0:  # an exponent past the range
        mantissa = draw(st.sampled_from(["1", "-1", "9.99", "0.1", "-2.5"]))
        marker = draw(st.sampled_from(["e", "E", "e+"]))
        text = f"{mantissa}{marker}{draw(st.integers(310, 100_000))}"
    elif choice == 1:  # an integer of 310 to 5,000 digits
        digits = draw(st.integers(310, 5_000))
        sign = draw(st.sampled_from([1, -1]))
        return Hostile(kind, ("-" if sign < 0 else "") + "9" * digits, sign * (10**digits - 1))
    elif choice == 2:  # a fraction with 310 or more digits before the point
        text = "1" + "0" * draw(st.integers(309, 400)) + "." + draw(st.sampled_from("05"))
    else:
        text, value = draw(st.sampled_from(OVERFLOWING_NUMBERS))
        return Hostile(kind, text, value)
    number = float(text)
    assert math.isinf(number), text  # the oracle itself
    return Hostile(kind, text, number)


@st.composite
def lone_surrogate_literal(draw: st.DrawFn) -> tuple[str, str]:
    """A JSON string literal holding an escaped lone surrogate, and its decoded value."""
    code = draw(st.integers(0xD800, 0xDFFF))
    escape = "\\u" + draw(st.sampled_from([f"{code:04x}", f"{code:04X}"]))
    if code >= 0xDC00:  # a low half alone, or before a high one ("\ud83d\ude00" reversed)
        escape += draw(st.sampled_from(["", "\\ud83d", "\\udbff"]))
    else:  # a high half followed by no low one
        escape += draw(st.sampled_from(["", "\\u0041", "\\ud800", "\\n"]))
    ascii_only = draw(st.booleans())
    before = _encoded(draw(plain_texts), ascii_only)
    after = _encoded(draw(plain_texts), ascii_only)
    literal = f'"{before}{escape}{after}"'
    value = json.loads(literal)
    assert _SURROGATE.search(value), literal  # the oracle itself
    return literal, value


@st.composite
def lone_surrogate(draw: st.DrawFn) -> Hostile:
    literal, value = draw(lone_surrogate_literal())
    where = draw(st.sampled_from(["value", "name", "raw"]))
    if where == "value":
        return Hostile("escaped lone surrogate in a value", literal, value)
    if where == "name":
        member = draw(small_documents)
        text = f"{{{literal}: {member.text}}}"
        return Hostile("escaped lone surrogate in a name", text, {value: member.value})
    raw = draw(st.sampled_from(["\ud800", "\udbff", "\udc00", "\udfff"]))
    text = f'"{_encoded(draw(plain_texts), False)}{raw}"'
    return Hostile("raw lone surrogate", text, json.loads(text))


@st.composite
def repeated_names(draw: st.DrawFn) -> Hostile:
    """One name twice in an object, spelt the same or differently ("a" and "\\u0061")."""
    name = draw(texts)
    spellings = [
        json.dumps(name),
        json.dumps(name, ensure_ascii=False),
        _escape_every_character(name),
    ]
    first, second = draw(st.sampled_from(spellings)), draw(st.sampled_from(spellings))
    assert json.loads(first) == json.loads(second) == name  # the oracle itself
    others = draw(st.dictionaries(texts.filter(lambda n: n != name), st.integers(), max_size=3))
    members = [f"{json.dumps(n)}: {v}" for n, v in others.items()]
    members += [f"{first}: {draw(small_documents).text}", f"{second}: 0"]
    return Hostile("repeated name", "{" + ", ".join(draw(st.permutations(members))) + "}")


# Bytes per level of each form of nesting: "[" "]", '{"a":' "}", and the two alternating.
_BYTES_PER_LEVEL = {"lists": 2, "objects": 6, "mixed": 4}


@st.composite
def too_deep(draw: st.DrawFn) -> Hostile:
    form = draw(st.sampled_from(sorted(_BYTES_PER_LEVEL)))
    levels = draw(
        st.one_of(
            st.integers(MAX_JSON_DEPTH + 1, 200),
            st.integers(MAX_JSON_DEPTH + 1, 100_000),
            st.sampled_from([MAX_JSON_DEPTH + 1, 1_000, 100_000]),
        )
    )
    levels = min(levels, (MAX_PAYLOAD_BYTES - 64) // _BYTES_PER_LEVEL[form])
    value: Any = draw(st.sampled_from([None, 0, "x"]))
    text = json.dumps(value)
    for level in range(levels):
        if form == "lists" or (form == "mixed" and level % 2):
            text, value = "[" + text + "]", [value]
        else:
            text, value = '{"a":' + text + "}", {"a": value}
    assert depth(value) == levels  # the oracle itself
    return Hostile(f"{levels} levels deep", text, value)


@st.composite
def trailing_garbage(draw: st.DrawFn) -> Hostile:
    text = draw(small_documents).text.strip()
    garbage = draw(
        st.one_of(
            st.sampled_from(["x", "}", "]", ",", "1", "{}", '"', "null", "\x00", "//", "\ufeff"]),
            small_documents.map(lambda d: d.text.strip()),
        )
    )
    separator = draw(st.sampled_from(["", " ", "\n", "\r\n\t"]))
    if separator == "" and text[-1] not in ']}"el':  # "1" then "2" would be one number
        separator = " "
    return Hostile("trailing garbage", text + separator + garbage)


NOT_JSON = ["[1,]", "{'a': 1}", "{a: 1}", "01", "+1", ".5", "1.", "0x10", '"\x01"', '"\\x"']
NOT_JSON += ['{"a":', "[", '"open', "tru", '"\\u12"', "1e", "-", "undefined", "\ufeff{}"]

# The fragments JSON data can carry (a direct payload), and those only a text can.
data_fragments = st.one_of(not_a_number(), overflow(), lone_surrogate(), too_deep())
text_fragments = st.one_of(
    repeated_names(),
    trailing_garbage(),
    st.sampled_from(NOT_JSON).map(lambda text: Hostile("not JSON", text)),
)


@st.composite
def hostile_texts(draw: st.DrawFn, data_only: bool = False) -> Hostile:
    """A hostile fragment alone, among valid items of a list, as an object's member among
    others, or nested a few lists down."""
    fragment = draw(data_fragments if data_only else st.one_of(data_fragments, text_fragments))
    text, value = fragment.text, fragment.value
    carried = value is not NO_VALUE
    context = draw(st.sampled_from(["alone", "list", "object", "nested"]))
    if context == "list":
        items = draw(st.lists(small_documents, max_size=3))
        at = draw(st.integers(0, len(items)))
        item_texts = [d.text for d in items]
        item_texts.insert(at, text)
        text = "[" + ", ".join(item_texts) + "]"
        if carried:
            item_values = [d.value for d in items]
            item_values.insert(at, value)
            value = item_values
    elif context == "object":
        name = draw(texts)
        others = draw(
            st.dictionaries(texts.filter(lambda n: n != name), small_documents, max_size=3)
        )
        members = [f"{json.dumps(n)}: {d.text}" for n, d in others.items()]
        members.append(f"{json.dumps(name)}: {text}")
        text = "{" + ",".join(draw(st.permutations(members))) + "}"
        if carried:
            value = {n: d.value for n, d in others.items()} | {name: value}
    elif context == "nested":
        for _ in range(draw(st.integers(1, 5))):
            text = "[" + text + "]"
            value = [value] if carried else value
    assume(len(text.encode("utf-8", "surrogatepass")) <= MAX_PAYLOAD_BYTES)
    return Hostile(fragment.kind, text, value)


HOSTILE_EXAMPLES = [
    Hostile("NaN", "[NaN]", [math.nan]),
    Hostile("overflow", '{"a": 1e400}', {"a": math.inf}),
    Hostile("overflow", "9" * 400, 10**400 - 1),
    Hostile("overflow", str(OVERFLOWING_INTEGER), OVERFLOWING_INTEGER),
    Hostile("escaped lone surrogate", '"\\ud800"', "\ud800"),
    Hostile("escaped lone surrogate in a name", '{"\\udfff": 1}', {"\udfff": 1}),
    Hostile("repeated name", '{"a": 1, "\\u0061": 2}'),
    Hostile("129 levels deep", "[" * 129 + "]" * 129, nested_lists(129)),
    Hostile("100000 levels deep", "[" * 100_000 + "]" * 100_000, nested_lists(100_000)),
    Hostile("trailing garbage", "{} {}"),
]


def with_hostile_examples(test: Callable[..., Any]) -> Callable[..., Any]:
    for hostile in HOSTILE_EXAMPLES:
        test = example(hostile=hostile)(test)
    return test


@examples(60)
@given(hostile=hostile_texts())
@with_hostile_examples
def test_hostile_texts_are_rejected_by_every_backend_and_write_nothing(
    backend: Backend, hostile: Hostile
) -> None:
    store = backend.store
    run = uuid4()
    store.register_waiter(run, "s", "go")
    with pytest.raises(InvalidSignalRequest) as raised:
        store.deliver_signal(run, "go", hostile.text)
    assert type(raised.value) is InvalidSignalRequest  # not PayloadTooLarge: it is small
    assert "payload_json" in str(raised.value)
    waiter = store.get_waiter(run, "s")
    assert waiter is not None and waiter.delivered_at is None and waiter.payload_json is None
    if backend.client is not None:
        row = backend.raw_item(run, "s")
        assert row is not None and "PayloadJson" not in row and "DeliveredAt" not in row


@examples(40)
@given(hostile=hostile_texts(), as_bytes=st.booleans())
@example(hostile=HOSTILE_EXAMPLES[0], as_bytes=False)
@example(hostile=HOSTILE_EXAMPLES[4], as_bytes=True)
@example(hostile=HOSTILE_EXAMPLES[6], as_bytes=False)
@example(hostile=HOSTILE_EXAMPLES[8], as_bytes=True)
@example(hostile=Hostile("raw lone surrogate", '["\ud800"]'), as_bytes=False)
def test_hostile_http_bodies_are_400_problems_and_write_nothing(
    fresh_runtime: Any, hostile: Hostile, as_bytes: bool
) -> None:
    run = str(uuid4())
    register(run)
    encodable = not _SURROGATE.search(hostile.text)
    body = hostile.text.encode() if as_bytes and encodable else hostile.text
    answer = http(DELIVER, {"runId": run, "signalName": "go"}, body=body)
    assert answer.status == 400, answer.text
    assert answer.content_type == PROBLEM
    problem = answer.json()
    assert problem["status"] == 400 and problem["code"] == "InvalidRequest"
    assert_undelivered_everywhere(run, fresh_runtime)


@examples(40)
@given(hostile=hostile_texts(data_only=True))
@with_hostile_examples
def test_hostile_direct_payloads_raise_exactly_invalid_signal_request(
    fresh_runtime: Any, hostile: Hostile
) -> None:
    assume(hostile.value is not NO_VALUE)  # the examples with only a text
    run = str(uuid4())
    register(run)
    with pytest.raises(Exception) as raised:  # noqa: PT011 - the type's name is the contract
        invoke("DeliverFunction", {"runId": run, "signalName": "go", "payload": hostile.value})
    assert type(raised.value).__name__ == "InvalidSignalRequest", raised.value
    assert_undelivered_everywhere(run, fresh_runtime)


def test_a_signal_name_with_a_lone_surrogate_is_rejected_by_every_backend(
    backend: Backend,
) -> None:
    run = uuid4()
    backend.store.register_waiter(run, "s", "go")
    for name in ["\ud800", "go\udfff"]:
        with pytest.raises(InvalidSignalRequest):
            backend.store.deliver_signal(run, name, "{}")
    waiter = backend.store.get_waiter(run, "s")
    assert waiter is not None and waiter.delivered_at is None


def test_a_direct_signal_name_with_a_lone_surrogate_is_invalid_signal_request(
    fresh_runtime: Any,
) -> None:
    run = str(uuid4())
    register(run)
    with pytest.raises(Exception) as raised:  # noqa: PT011 - the type's name is the contract
        invoke("DeliverFunction", {"runId": run, "signalName": "go\ud800", "payload": 1})
    assert type(raised.value).__name__ == "InvalidSignalRequest"
    assert_undelivered_everywhere(run, fresh_runtime)


@pytest.mark.parametrize(
    ("route", "parameters"),
    [(DELIVER, {"signalName": "go\ud800"}), (GET, {"stepKey": "\udfff"})],
    ids=["signal name", "step key"],
)
def test_a_path_parameter_with_a_lone_surrogate_is_a_400_problem(
    fresh_runtime: Any, route: str, parameters: dict[str, str]
) -> None:
    run = str(uuid4())
    register(run)
    answer = http(route, {"runId": run, **parameters}, body="1" if route == DELIVER else None)
    assert answer.status == 400 and answer.content_type == PROBLEM
    assert_undelivered_everywhere(run, fresh_runtime)


def test_the_size_limit_counts_utf8_bytes_over_http_and_direct(fresh_runtime: Any) -> None:
    """Exactly 262,144 bytes of UTF-8 is accepted and read back; one byte more is a 413 over
    HTTP and exactly InvalidSignalRequest over direct invocation, and writes nothing."""
    fits = '"' + "é" * ((MAX_PAYLOAD_BYTES - 2) // 2) + '"'
    assert len(fits.encode()) == MAX_PAYLOAD_BYTES and len(fits) < MAX_PAYLOAD_BYTES
    over = fits[:-1] + 'x"'

    run = str(uuid4())
    register(run)
    assert http(DELIVER, {"runId": run, "signalName": "go"}, body=fits).status == 200
    assert http(GET, {"runId": run, "stepKey": "s"}).json()["payload"] == json.loads(fits)

    run = str(uuid4())
    register(run)
    answer = http(DELIVER, {"runId": run, "signalName": "go"}, body=over.encode())
    assert answer.status == 413 and answer.content_type == PROBLEM
    assert answer.json()["code"] == "PayloadTooLarge"
    with pytest.raises(Exception) as raised:  # noqa: PT011 - the type's name is the contract
        invoke("DeliverFunction", {"runId": run, "signalName": "go", "payload": json.loads(over)})
    assert type(raised.value).__name__ == "InvalidSignalRequest"
    assert_undelivered_everywhere(run, fresh_runtime)


# --- 4. rows written before the rule ------------------------------------------------------

LEGACY_PAYLOADS = {
    "1e400": '{"a": 1e400}',
    "escaped surrogate": '"\\ud800"',
    "4301 digits": "1" + "0" * 4300,
    "NaN": "[NaN]",
    "-Infinity": "-Infinity",
    "repeated name": '{"a": 1, "a": 2}',
    "surrogate name": '{"\\udfff": ["\\ud800x", 1e999]}',
    "200 deep": "[" * 200 + "]" * 200,
    "5000 deep": "[" * 5_000 + "]" * 5_000,
    "not JSON": "not JSON at all",
}


def put_legacy_row(
    client: Any, run: str, step_key: str, payload: str, table: str = TABLE_NAME
) -> None:
    """A delivered row as a version before the rule wrote it."""
    client.put_item(
        TableName=table,
        Item={
            "RunId": {"S": run},
            "StepKey": {"S": step_key},
            "SignalName": {"S": "go"},
            "CreatedAt": {"S": "2026-11-23T10:15:30.123Z"},
            "DeliveredAt": {"S": "2026-11-23T10:15:31.456Z"},
            "PayloadJson": {"S": payload},
        },
    )


def put_legacy_rows(client: Any, run: str, table: str = TABLE_NAME) -> list[tuple[str, str]]:
    rows = [(f"legacy-{i:02}", p) for i, p in enumerate(LEGACY_PAYLOADS.values())]
    for step_key, payload in rows:
        put_legacy_row(client, run, step_key, payload, table)
    return rows


def assert_python_api_reads_them_unchanged(
    store: FlowSignalStore, run: str, rows: list[tuple[str, str]]
) -> None:
    for step_key, payload in rows:
        waiter = store.get_waiter(run, step_key)
        assert waiter is not None and waiter.payload_json == payload
    assert [(w.step_key, w.payload_json) for w in store.list_waiters(run)] == rows


def assert_http_and_direct_read_them(run: str, rows: list[tuple[str, str]]) -> None:
    step_keys = [step_key for step_key, _ in rows]
    for step_key in step_keys:
        read = http(GET, {"runId": run, "stepKey": step_key})
        assert read.status == 200 and read.content_type == "application/json", read.text
        assert read.json()["stepKey"] == step_key and read.json()["state"] == "Delivered"
        got = as_lambda_returns(invoke("GetFunction", {"runId": run, "stepKey": step_key}))
        assert got["stepKey"] == step_key and got["state"] == "Delivered"

    listed = http(LIST, {"runId": run})
    assert listed.status == 200 and listed.content_type == "application/json", listed.text
    assert [w["stepKey"] for w in listed.json()["waiters"]] == step_keys
    page = as_lambda_returns(invoke("ListFunction", {"runId": run}))
    assert [w["stepKey"] for w in page["waiters"]] == step_keys


@pytest.mark.parametrize("payload", list(LEGACY_PAYLOADS.values()), ids=list(LEGACY_PAYLOADS))
def test_a_row_written_before_the_rule_still_reads_on_moto(
    fresh_runtime: Any, payload: str
) -> None:
    run = str(uuid4())
    rows = [("s", payload)]
    put_legacy_row(fresh_runtime, run, "s", payload)
    assert_http_and_direct_read_them(run, rows)
    store = DynamoDBFlowSignalStore(TABLE_NAME, client=fresh_runtime)
    assert_python_api_reads_them_unchanged(store, run, rows)


def test_rows_written_before_the_rule_read_together_on_moto(fresh_runtime: Any) -> None:
    run = str(uuid4())
    rows = put_legacy_rows(fresh_runtime, run)
    assert_http_and_direct_read_them(run, rows)
    store = DynamoDBFlowSignalStore(TABLE_NAME, client=fresh_runtime)
    assert_python_api_reads_them_unchanged(store, run, rows)


@pytest.fixture
def local_runtime(
    dynamodb_local_endpoint: str,
    dynamodb_local_table: tuple[Any, str],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Any]:
    """The functions' runtime over DynamoDB Local's session table; yields its client."""
    monkeypatch.setenv("TABLE_NAME", dynamodb_local_table[1])
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", dynamodb_local_endpoint)
    reset_runtime()
    yield dynamodb_local_table[0]
    reset_runtime()


@pytest.mark.dynamodb_local
def test_rows_written_before_the_rule_read_together_on_dynamodb_local(
    local_runtime: Any, dynamodb_local_table: tuple[Any, str]
) -> None:
    run, table = str(uuid4()), dynamodb_local_table[1]
    rows = put_legacy_rows(local_runtime, run, table)
    store = DynamoDBFlowSignalStore(table, client=local_runtime)
    assert_python_api_reads_them_unchanged(store, run, rows)
    assert_http_and_direct_read_them(run, rows)
