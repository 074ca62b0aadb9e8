"""The value rules (docs/contract.md, Values): every bad input is InvalidSignalRequest naming
the field, and writes nothing; every value at a limit is accepted. Run against every backend."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from contextlib import nullcontext
from datetime import date, datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote
from uuid import UUID, uuid4

import pytest
from test_http import DELIVER, LIST, REGISTER, Answer

from conftest import TABLE_NAME, Backend, FakeClock
from flowsignals import (
    FlowSignalError,
    FlowSignalStore,
    InvalidSignalRequest,
    PayloadTooLarge,
    SignalDeliveryStatus,
)
from flowsignals.core.values import parse_timestamp
from flowsignals.testing import FakeLambdaContext, http_api_event, record_requests
from template_yaml import load_handler

# Fixed, not uuid4(): the ids of the cases below must be the same in every xdist worker.
RUN = UUID("21d9dbf5-0fe0-4ea9-a19b-5e66f7e12542")
BAD_RUN_IDS = [
    "",
    " ",
    f" {RUN}",
    f"{RUN}\n",
    "order-1 ",
    "\torder-1",
    "order\n1",
    "a\x00b",
    "a\x9fb",
    "x" * 257,
    "\ud800",
    12345,
    None,
    RUN.bytes,
]
BAD_STEP_KEYS = ["", " ", " \t\n ", "x" * 257, "a\x00b", "a\nb", "\x7f", "a\x85", "\ud800", None, 7]
BAD_SIGNAL_NAMES = [
    "",
    "   ",
    "\t\n",
    "x" * 257,
    "  " + "y" * 257 + "  ",
    "a\x01",
    "a\x9f",
    "\udfff",
]
BAD_SIGNAL_NAMES += [None, b"go"]
BAD_PAYLOADS = [
    "",
    "   ",
    "NaN",
    "Infinity",
    "-Infinity",
    '{"a": NaN}',
    "[1, Infinity]",
    "{",
    "{'a': 1}",
    "[1,]",
    "undefined",
    '{"a": 1} x',
    "\ufeff{}",
    '"\x01"',
    '"\ud800"',
    "[" * 100_000 + "]" * 100_000,
    "[" * 129 + "]" * 129,
    '{"a": ' * 129 + "1" + "}" * 129,
    "1e400",
    "-1e400",
    '{"a": [1, 2e308]}',
    "9" * 400,
    "-" + "9" * 4301,
    r'"\ud800"',
    r'["ok", "\udfff"]',
    r'{"\udc00": 1}',
    r'"\ude00\ud83d"',
    '{"a": 1, "a": 2}',
    '[{"b": {"x": 1, "x": 1}}]',
    None,
    b"{}",
    {"a": 1},
]
BAD_IDEMPOTENCY_KEYS = ["", "x" * 129, "é", "a\nb", "\x7f", "tab\tkey", 5]
BAD_TASK_TOKENS = ["", "t" * 2049, 42, "\udc00"]
BAD_DEADLINES = [
    datetime(2026, 11, 23, 12, 0),
    "2026-11-23T12:00:00",
    "1700000000",
    "0",
    "2026-13-01T00:00:00Z",
    date(2026, 11, 23),
    1.7e9,
    1_700_000_000,
    datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))),
]


@pytest.fixture
def run_id(store: FlowSignalStore) -> UUID:
    run = uuid4()
    store.register_waiter(run, "s", "go")
    return run


def assert_rejected(
    backend: Backend,
    run_id: UUID,
    call: Callable[[], object],
    field: str,
    error: type[InvalidSignalRequest] = InvalidSignalRequest,
) -> None:
    """Refused, and nothing changed: the run's waiters are as they were and, for DynamoDB, the
    call sent no request at all (the arguments are checked before any I/O)."""
    waiters = backend.store.list_waiters(run_id)
    requests = record_requests(backend.client) if backend.client else nullcontext([])
    with requests as sent, pytest.raises(error, match=field) as raised:
        call()
    assert isinstance(raised.value, ValueError) and isinstance(raised.value, FlowSignalError)
    assert [request.operation for request in sent] == []
    assert backend.store.list_waiters(run_id) == waiters


@pytest.mark.parametrize("bad", BAD_RUN_IDS, ids=repr)
def test_bad_run_ids_are_rejected_by_every_operation(
    backend: Backend, run_id: UUID, bad: Any
) -> None:
    store = backend.store
    calls: list[Callable[[], object]] = [
        lambda: store.register_waiter(bad, "s", "go"),
        lambda: store.deliver_signal(bad, "go", "{}"),
        lambda: store.get_waiter(bad, "s"),
        lambda: store.remove_waiter(bad, "s"),
        lambda: store.list_waiters(bad),
    ]
    for call in calls:
        assert_rejected(backend, run_id, call, "run_id")


@pytest.mark.parametrize("bad", BAD_STEP_KEYS, ids=repr)
def test_bad_step_keys_are_rejected(backend: Backend, run_id: UUID, bad: Any) -> None:
    store = backend.store
    for call in (
        lambda: store.register_waiter(run_id, bad, "go"),
        lambda: store.get_waiter(run_id, bad),
        lambda: store.remove_waiter(run_id, bad),
    ):
        assert_rejected(backend, run_id, call, "step_key")


@pytest.mark.parametrize("bad", BAD_SIGNAL_NAMES, ids=repr)
def test_bad_signal_names_are_rejected(backend: Backend, run_id: UUID, bad: Any) -> None:
    store = backend.store
    assert_rejected(backend, run_id, lambda: store.register_waiter(run_id, "s", bad), "signal_name")
    assert_rejected(backend, run_id, lambda: store.deliver_signal(run_id, bad, "{}"), "signal_name")


@pytest.mark.parametrize("bad", BAD_PAYLOADS, ids=lambda p: repr(p)[:40])
def test_bad_payloads_are_rejected(backend: Backend, run_id: UUID, bad: Any) -> None:
    store = backend.store
    assert_rejected(
        backend, run_id, lambda: store.deliver_signal(run_id, "go", bad), "payload_json"
    )


def test_a_payload_one_byte_over_the_limit_is_too_large(backend: Backend, run_id: UUID) -> None:
    payload = '"' + "x" * 262_143 + '"'
    assert len(payload.encode()) == 262_145
    store = backend.store
    assert_rejected(
        backend, run_id, lambda: store.deliver_signal(run_id, "go", payload), "262", PayloadTooLarge
    )


def test_the_limit_counts_utf8_bytes_not_characters(backend: Backend, run_id: UUID) -> None:
    payload = '"' + "€" * 87_381 + '"'  # 87,383 characters, 262,145 bytes
    store = backend.store
    assert_rejected(
        backend,
        run_id,
        lambda: store.deliver_signal(run_id, "go", payload),
        "payload",
        PayloadTooLarge,
    )


@pytest.mark.parametrize("bad", BAD_IDEMPOTENCY_KEYS, ids=repr)
def test_bad_idempotency_keys_are_rejected(backend: Backend, run_id: UUID, bad: Any) -> None:
    store = backend.store
    assert_rejected(
        backend,
        run_id,
        lambda: store.deliver_signal(run_id, "go", "{}", idempotency_key=bad),
        "idempotency_key",
    )


@pytest.mark.parametrize("bad", BAD_TASK_TOKENS, ids=lambda t: repr(t)[:20])
def test_bad_task_tokens_are_rejected(backend: Backend, run_id: UUID, bad: Any) -> None:
    store = backend.store
    assert_rejected(
        backend,
        run_id,
        lambda: store.register_waiter(run_id, "s", "go", task_token=bad),
        "task_token",
    )


@pytest.mark.parametrize("bad", BAD_DEADLINES, ids=repr)
def test_bad_deadlines_are_rejected(backend: Backend, run_id: UUID, bad: Any) -> None:
    store = backend.store
    assert_rejected(
        backend, run_id, lambda: store.register_waiter(run_id, "new", "go", bad), "expires_at"
    )


def test_values_at_their_limits_are_accepted(store: FlowSignalStore, clock: FakeClock) -> None:
    run = uuid4()
    step_key = "k" * 255 + "€"
    name = "n" * 256
    token = "t" * 2048
    key = " !~" + "x" * 125

    waiter = store.register_waiter(
        run, step_key, f"\t {name} \n", clock.now + timedelta(days=1), task_token=token
    )
    assert (waiter.step_key, waiter.signal_name, waiter.task_token) == (step_key, name, token)

    result = store.deliver_signal(run, name, "{}", idempotency_key=key)
    assert (result.status, result.step_key) == (SignalDeliveryStatus.DELIVERED, step_key)
    stored = store.get_waiter(run, step_key)
    assert stored is not None and stored.idempotency_key == key


def test_step_keys_with_inner_spaces_and_one_character_are_accepted(
    store: FlowSignalStore,
) -> None:
    run = uuid4()
    for step_key in ("a", " x ", "a b", "-"):
        store.register_waiter(run, step_key, "go")
    assert sorted(w.step_key for w in store.list_waiters(run)) == sorted(["a", " x ", "a b", "-"])


def test_run_ids_are_any_orchestrator_id_and_every_uuid_spelling_is_one_run(
    store: FlowSignalStore,
) -> None:
    run = uuid4()
    opaque = [
        "order-1234-approval",
        "Order-1234-Approval",
        "arn:aws:states:us-east-1:123456789012:execution:Approvals:order-1234",
        f"{{{run}}}",
        f"urn:uuid:{run}",
        run.hex[:31],
        "g" * 32,
        "é" * 256,
        "a b",
    ]
    for run_id in opaque:
        assert store.register_waiter(run_id, "s", "go").run_id == run_id
    assert len({store.get_waiter(r, "s") for r in opaque}) == len(opaque)  # case-sensitive

    spellings = [run, str(run), str(run).upper(), run.hex, run.hex.upper()]
    for spelling in spellings:
        assert store.register_waiter(spelling, "s", "go").run_id == str(run)
    assert [w.run_id for w in store.list_waiters(run.hex.upper())] == [str(run)]


DEEPEST = "[" * 128 + "]" * 128
EXTREME_PAYLOADS = [
    DEEPEST,
    '{"a": ' * 127 + "{}" + "}" * 127,
    "1.7976931348623157e308",
    "-1.7976931348623157e308",
    "1e-400",
    "5e-324",
    "9" * 308,
    "-" + "9" * 308,
    r'"\ud83d\ude00 \u00e9 \u0000 \\ud800"',
    '"\U0010ffff\U0001f600\u2028"',
    '{"": 0, "a": {"": []}}',
    "null",
    "0",
    '""',
    " \t\n[1] \n",
]


@pytest.mark.parametrize("payload", EXTREME_PAYLOADS, ids=lambda p: repr(p)[:40])
def test_payloads_at_the_edges_of_i_json_are_accepted_and_read_back(
    store: FlowSignalStore, payload: str
) -> None:
    run = uuid4()
    store.register_waiter(run, "s", "go")
    assert store.deliver_signal(run, "go", payload).status is SignalDeliveryStatus.DELIVERED
    stored = store.get_waiter(run, "s")
    assert stored is not None and stored.payload_json == payload
    assert json.loads(stored.payload_json) == json.loads(payload)


# --- whole numbers: one rule for every field ----------------------------------------------
# JSON Schema's integer: any JSON number whose value is whole, however spelt (60, 60.0, 6e1);
# never a boolean, a string or a fraction. A query string is text: plain ASCII digits only.


def spellings(whole: int) -> list[str]:
    """JSON number texts of one whole number."""
    return [str(whole), f"{whole}.0", f"{whole}e0", f"{whole * 10}e-1", f"{whole / 10}E1"]


NOT_WHOLE_NUMBERS = ["true", "false", '"5"', '" 7 "', '"+5"', '"1_0"', "5.5", "1e-3", "[5]", "{}"]
WHOLE_NUMBER_FIELDS = {
    # field: (a whole number inside its range, its range)
    "timeoutSeconds": (60, (1, 31_536_000)),
    "quorum": (2, (1, 10)),
    "expiresInSeconds": (60, (1, 2_592_000)),
    "limit": (5, (1, 100)),
    "bufferSeconds": (60, (1, 2_592_000)),
}
TWO_DECIDERS = ["sub:a", "sub:b"]
handler = functools.cache(load_handler)  # read from template.yaml once, not per call


def call_route(route: str, parameters: dict[str, str], **request: Any) -> Answer:
    return Answer(handler(route)(http_api_event(route, parameters, **request), FakeLambdaContext()))


LINKS = "POST /runs/{runId}/signals/{signalName}/links"


def _out_of_range(field: str) -> list[str]:
    low, high = WHOLE_NUMBER_FIELDS[field][1]
    return [str(low - 1), f"{low - 1}.0", str(high + 1), f"{high + 1}.0", "-1", "1e300"]


def _register_body(field: str, literal: str) -> str:
    deciders = ', "deciders": ["sub:a", "sub:b"]' if field == "quorum" else ""
    return f'{{"signalName": "go"{deciders}, "{field}": {literal}}}'


def _http_body_answer(field: str, literal: str) -> Answer:
    """The answer to a JSON body holding ``literal`` as the field's value, as sent."""
    run = str(uuid4())
    if field == "expiresInSeconds":
        route, parameters = LINKS, {"runId": run, "signalName": "go"}
        body = f'{{"{field}": {literal}}}'
    else:
        route, parameters = REGISTER, {"runId": run, "stepKey": "s"}
        body = _register_body(field, literal)
    return call_route(route, parameters, body=body, headers={"Content-Type": "application/json"})


def _direct(field: str, literal: str) -> Any:
    """The direct invocation of the field's function with ``literal`` read as JSON."""
    run = str(uuid4())
    value = json.loads(literal)
    function, event = {
        "timeoutSeconds": ("RegisterFunction", {"stepKey": "s", "signalName": "go"}),
        "quorum": (
            "RegisterFunction",
            {"stepKey": "s", "signalName": "go", "deciders": TWO_DECIDERS},
        ),
        "expiresInSeconds": ("LinksFunction", {"signalName": "go"}),
        "limit": ("ListFunction", {}),
        "bufferSeconds": ("DeliverFunction", {"signalName": "go"}),
    }[field]
    return handler(function)({"runId": run, **event, field: value}, FakeLambdaContext())


BODY_FIELDS = ["timeoutSeconds", "quorum", "expiresInSeconds"]


@pytest.mark.parametrize("field", BODY_FIELDS)
def test_every_spelling_of_a_whole_number_is_accepted_in_a_json_body(
    links: Any, field: str
) -> None:
    whole = WHOLE_NUMBER_FIELDS[field][0]
    for literal in spellings(whole):
        answer = _http_body_answer(field, literal)
        assert answer.status == 200, (literal, answer.text)
        if field == "quorum":
            assert answer.json["quorum"] == whole
        elif field == "timeoutSeconds":
            created, expires = (parse_timestamp(answer.json[k]) for k in ("createdAt", "expiresAt"))
            # created and counted from the request, each at its own millisecond
            assert abs(expires - created - timedelta(seconds=whole)) < timedelta(seconds=1)


@pytest.mark.parametrize("field", BODY_FIELDS)
def test_anything_but_a_whole_number_in_range_is_400_in_a_json_body(links: Any, field: str) -> None:
    for literal in NOT_WHOLE_NUMBERS + _out_of_range(field):
        answer = _http_body_answer(field, literal)
        assert answer.status == 400, (literal, answer.text)
        assert answer.json["detail"].startswith(f"{field}: "), answer.json["detail"]
    assert links.scan(TableName=TABLE_NAME)["Items"] == []


@pytest.mark.parametrize("field", list(WHOLE_NUMBER_FIELDS))
def test_direct_invocation_takes_the_same_whole_numbers(links: Any, field: str) -> None:
    for literal in spellings(WHOLE_NUMBER_FIELDS[field][0]):
        assert _direct(field, literal) is not None, literal
    for literal in NOT_WHOLE_NUMBERS + _out_of_range(field):
        with pytest.raises(InvalidSignalRequest, match=f"^{field}: "):
            _direct(field, literal)


QUERY_TEXTS_REFUSED = ["+5", "-5", " 7 ", "7 ", "1_0", "5.0", "1e1", "0x5", "true", ""]
QUERY_TEXTS_REFUSED += ["\u0665", "\u00b2", "\uff15", "5\n"]  # Arabic-Indic, superscript, wide


def _query_answer(field: str, text: str) -> Answer:
    run = str(uuid4())
    query = f"{field}={quote(text)}"
    if field == "limit":
        return call_route(LIST, {"runId": run}, raw_query_string=query)
    return call_route(DELIVER, {"runId": run, "signalName": "go"}, raw_query_string=query)


@pytest.mark.parametrize("field", ["limit", "bufferSeconds"])
def test_a_query_whole_number_is_plain_ascii_digits(fresh_runtime: Any, field: str) -> None:
    low, high = WHOLE_NUMBER_FIELDS[field][1]
    for text in [str(low), str(high), "05", "0" * 300 + "5"]:
        answer = _query_answer(field, text)
        assert answer.status in (200, 202), (text, answer.text)
    for text in [*QUERY_TEXTS_REFUSED, str(low - 1), str(high + 1), "9" * 5000]:
        answer = _query_answer(field, text)
        assert answer.status == 400, (text, answer.text)
        assert answer.json["detail"].startswith(f"{field}: "), answer.json["detail"]


def test_the_python_api_takes_the_same_whole_numbers(backend: Backend, run_id: UUID) -> None:
    store = backend.store
    assert store.register_waiter(run_id, "q", "go", deciders=TWO_DECIDERS, quorum=2.0).quorum == 2
    assert len(store.list_waiters_page(run_id, limit=1.0)) == 1
    for bad in (True, False, "2", 2.5, None):
        assert_rejected(
            backend,
            run_id,
            lambda bad=bad: store.register_waiter(
                run_id, "q2", "go", deciders=TWO_DECIDERS, quorum=bad
            ),
            "quorum",
        )
        assert_rejected(
            backend, run_id, lambda bad=bad: store.list_waiters_page(run_id, limit=bad), "limit"
        )
