"""SPEC section 1 "Values": every bad input is InvalidSignalRequest naming the field, and writes
nothing; every value at a limit is accepted. Run against every backend."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
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

RUN = uuid4()
BAD_RUN_IDS = [
    "not-a-uuid",
    "",
    f"{{{RUN}}}",
    f"urn:uuid:{RUN}",
    f" {RUN}",
    f"{RUN}\n",
    str(RUN)[:8] + " " + str(RUN)[9:],
    RUN.hex[:31],
    RUN.hex + "0",
    "g" * 32,
    str(RUN).replace("-", "")[:-4] + "----",
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
    None,
    b"{}",
    {"a": 1},
]
BAD_IDEMPOTENCY_KEYS = ["", "x" * 129, "é", "a\nb", "\x7f", "tab\tkey", 5]
BAD_TASK_TOKENS = ["", "t" * 2049, 42, "\udc00"]
BAD_DEADLINES = [datetime(2026, 11, 23, 12, 0), "2026-11-23T12:00:00Z", date(2026, 11, 23), 1.7e9]


@pytest.fixture
def run_id(store: FlowSignalStore) -> UUID:
    run = uuid4()
    store.register_waiter(run, "s", "go")
    return run


def snapshot(backend: Backend, run_id: UUID) -> tuple[Any, ...]:
    """What a bad request must not change: the run's waiters and, for DynamoDB, the row count."""
    waiters = backend.store.list_waiters(run_id)
    if backend.client is None:
        return (waiters,)
    count = backend.client.scan(TableName=backend.table_name, Select="COUNT")["Count"]
    return (waiters, count)


def assert_rejected(
    backend: Backend,
    run_id: UUID,
    call: Callable[[], object],
    field: str,
    error: type[InvalidSignalRequest] = InvalidSignalRequest,
) -> None:
    before = snapshot(backend, run_id)
    with pytest.raises(error, match=field) as raised:
        call()
    assert isinstance(raised.value, ValueError) and isinstance(raised.value, FlowSignalError)
    assert snapshot(backend, run_id) == before


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
