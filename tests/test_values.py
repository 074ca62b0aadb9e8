"""The value rules (docs/contract.md, Values): every bad input is InvalidSignalRequest naming
the field, and writes nothing; every value at a limit is accepted. Run against every backend."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import nullcontext
from datetime import date, datetime, timedelta, timezone
from typing import Any
from uuid import UUID, uuid4

import pytest

from conftest import Backend, FakeClock
from flowsignals import (
    FlowSignalError,
    FlowSignalStore,
    InvalidSignalRequest,
    PayloadTooLarge,
    SignalDeliveryStatus,
)
from flowsignals.testing import record_requests

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
