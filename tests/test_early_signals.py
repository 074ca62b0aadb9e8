"""Failure signals, who delivered, and early signals (``buffer_for``): the contract on every
backend, the DynamoDB row layout of a buffered signal, and a buffered delivery crossing a
registration under threads (in-memory and DynamoDB Local; moto is not atomic under threads)."""

from __future__ import annotations

import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from conftest import Backend, FakeClock, dynamodb_local_client, make_backend
from flowsignals import (
    DynamoDBFlowSignalStore,
    FlowSignalStore,
    FlowSignalWaiter,
    InvalidSignalRequest,
    SignalDeliveryResult,
    SignalDeliveryStatus,
)
from flowsignals.backends.dynamodb import SIGNAL_INDEX
from flowsignals.core.models import BufferedSignal, SignalFailure
from flowsignals.core.values import format_timestamp

DELIVERED = SignalDeliveryStatus.DELIVERED
BUFFERED = SignalDeliveryStatus.BUFFERED
NOT_FOUND = SignalDeliveryStatus.NOT_FOUND
ALREADY_DELIVERED = SignalDeliveryStatus.ALREADY_DELIVERED
EXPIRED = SignalDeliveryStatus.EXPIRED

HOUR = timedelta(hours=1)
THIRTY_DAYS = timedelta(days=30)
RETENTION_SECONDS = 7 * 24 * 3600  # the DynamoDB store's default retention
BUFFERED_PREFIX = "\x1f"


@pytest.fixture
def run_id() -> UUID:
    return uuid4()


def undelivered(store: FlowSignalStore, run: UUID | str, step_key: str) -> FlowSignalWaiter:
    waiter = store.get_waiter(run, step_key)
    assert waiter is not None, f"waiter {step_key!r} is missing"
    assert waiter.delivered_at is None, f"waiter {step_key!r} was delivered: {waiter!r}"
    return waiter


def buffered_result(until: datetime, *, replayed: bool = False) -> SignalDeliveryResult:
    return SignalDeliveryResult(status=BUFFERED, expires_at=until, replayed=replayed)


# --- arguments: refused, naming the argument, writing nothing ------------------------------

REFUSED: list[tuple[str, dict[str, Any], str]] = [
    # (case id, deliver_signal's keyword arguments, the name the message must give)
    ("payload-and-failure", {"payload_json": "1", "failure": SignalFailure(error="E")}, "failure"),
    ("neither-payload-nor-failure", {}, "payload_json"),
    ("empty-error", {"failure": {"error": ""}}, "failure.error"),
    ("error-too-long", {"failure": {"error": "E" * 257}}, "failure.error"),
    ("error-with-tab", {"failure": {"error": "Bad\terror"}}, "failure.error"),
    ("error-with-del", {"failure": {"error": "Bad\x7f"}}, "failure.error"),
    ("error-with-c1", {"failure": {"error": "Bad\x85"}}, "failure.error"),
    ("error-not-a-string", {"failure": {"error": 7}}, "failure.error"),
    ("cause-too-long", {"failure": {"error": "E", "cause": "c" * 32_769}}, "failure.cause"),
    ("delivered-by-too-long", {"payload_json": "1", "delivered_by": "b" * 513}, "delivered_by"),
    ("delivered-by-newline", {"payload_json": "1", "delivered_by": "ops\nteam"}, "delivered_by"),
    ("delivered-by-nul", {"payload_json": "1", "delivered_by": "ops\x00"}, "delivered_by"),
    ("buffer-for-zero", {"payload_json": "1", "buffer_for": timedelta(0)}, "buffer_for"),
    ("buffer-for-negative", {"payload_json": "1", "buffer_for": -HOUR}, "buffer_for"),
    (
        "buffer-for-over-30-days",
        {"payload_json": "1", "buffer_for": THIRTY_DAYS + timedelta(microseconds=1)},
        "buffer_for",
    ),
    ("buffer-for-seconds-as-int", {"payload_json": "1", "buffer_for": 3600}, "buffer_for"),
    ("buffer-for-as-text", {"payload_json": "1", "buffer_for": "PT1H"}, "buffer_for"),
]


@pytest.mark.parametrize(("arguments", "named"), [pytest.param(a, n, id=i) for i, a, n in REFUSED])
def test_bad_delivery_arguments_are_refused_and_write_nothing(
    store: FlowSignalStore, run_id: UUID, arguments: dict[str, Any], named: str
) -> None:
    store.register_waiter(run_id, "s", "go")

    # A waiter could receive it: it must stay undelivered.
    with pytest.raises(InvalidSignalRequest, match=rf"\b{re.escape(named)}\b") as refused:
        store.deliver_signal(run_id, "go", **arguments)
    assert "ops" not in str(refused.value), "a message never repeats the rejected value"
    # No waiter could receive it, buffer_for is given: nothing may be buffered.
    early = {"buffer_for": HOUR} | arguments
    with pytest.raises(InvalidSignalRequest, match=rf"\b{re.escape(named)}\b"):
        store.deliver_signal(run_id, "early", **early)

    undelivered(store, run_id, "s")
    assert store.list_buffered_signals(run_id) == []
    assert store.register_waiter(run_id, "e", "early").delivered_at is None


def test_payload_and_failure_together_or_neither_name_both(
    store: FlowSignalStore, run_id: UUID
) -> None:
    both: dict[str, Any] = {"payload_json": "1", "failure": SignalFailure(error="E")}
    for arguments in (both, {}):
        with pytest.raises(InvalidSignalRequest) as refused:
            store.deliver_signal(run_id, "go", **arguments)
        assert "payload_json" in str(refused.value) and "failure" in str(refused.value)


def test_values_at_their_limits_are_accepted_and_read_back(
    store: FlowSignalStore, run_id: UUID, clock: FakeClock
) -> None:
    error, cause, by = "E" * 256, "ç" * 32_768, "b" * 511 + "✓"
    store.register_waiter(run_id, "s", "go")

    result = store.deliver_signal(
        run_id, "go", failure=SignalFailure(error=error, cause=cause), delivered_by=by
    )
    assert (result.status, result.step_key) == (DELIVERED, "s")
    waiter = store.get_waiter(run_id, "s")
    assert waiter is not None
    assert waiter.failure == SignalFailure(error=error, cause=cause)
    assert (waiter.payload_json, waiter.delivered_by) == (None, by)

    longest = store.deliver_signal(run_id, "later", "1", buffer_for=THIRTY_DAYS)
    assert longest == buffered_result(clock.stored_now + THIRTY_DAYS)
    shortest = store.deliver_signal(run_id, "soon", "1", buffer_for=timedelta(milliseconds=1))
    assert shortest == buffered_result(clock.stored_now + timedelta(milliseconds=1))


# --- failure signals and who delivered ------------------------------------------------------


def test_a_failure_is_delivered_like_a_payload(
    store: FlowSignalStore, run_id: UUID, clock: FakeClock
) -> None:
    store.register_waiter(run_id, "review", "approve", task_token="token-1")
    store.register_waiter(run_id, "second", "approve")
    failure = SignalFailure(error="Rejected", cause="Over budget: 12,000 € > 10,000 €")

    result = store.deliver_signal(
        run_id, "approve", failure=failure, idempotency_key="click-1", delivered_by="alice@corp"
    )

    assert result == SignalDeliveryResult(
        status=DELIVERED, step_key="review", delivered_at=clock.stored_now
    )
    waiter = store.get_waiter(run_id, "review")
    assert waiter is not None
    assert waiter.failure == failure and waiter.payload_json is None
    assert waiter.delivered_at == clock.stored_now
    assert (waiter.delivered_by, waiter.idempotency_key) == ("alice@corp", "click-1")
    assert waiter.task_token == "token-1"
    # A retry with its key is answered again and writes nothing; "second" stays waiting.
    clock.advance(seconds=3)
    retry = store.deliver_signal(run_id, "approve", failure=failure, idempotency_key="click-1")
    assert retry == result.model_copy(update={"replayed": True})
    undelivered(store, run_id, "second")
    # A failure without a cause keeps none.
    store.deliver_signal(run_id, "approve", failure=SignalFailure(error="Timeout"))
    second = store.get_waiter(run_id, "second")
    assert second is not None and second.failure == SignalFailure(error="Timeout", cause=None)


@pytest.mark.parametrize("failure_first", [True, False], ids=["failure-first", "payload-first"])
def test_the_first_of_a_payload_and_a_failure_wins(
    store: FlowSignalStore, run_id: UUID, clock: FakeClock, failure_first: bool
) -> None:
    store.register_waiter(run_id, "s", "go")
    as_failure: dict[str, Any] = {"failure": SignalFailure(error="Rejected", cause="no")}
    as_payload: dict[str, Any] = {"payload_json": '{"approved": true}'}
    first, second = (as_failure, as_payload) if failure_first else (as_payload, as_failure)

    won = store.deliver_signal(run_id, "go", **first, delivered_by="first")
    clock.advance(seconds=1)
    lost = store.deliver_signal(run_id, "go", **second, delivered_by="second")

    assert (won.status, won.step_key) == (DELIVERED, "s")
    assert lost == SignalDeliveryResult(
        status=ALREADY_DELIVERED, step_key="s", delivered_at=won.delivered_at
    )
    waiter = store.get_waiter(run_id, "s")
    assert waiter is not None
    assert waiter.payload_json == first.get("payload_json")
    assert waiter.failure == first.get("failure")
    assert waiter.delivered_by == "first"


def test_delivered_by_is_kept_on_the_waiter_and_absent_when_not_given(
    store: FlowSignalStore, run_id: UUID, clock: FakeClock
) -> None:
    for step in ("a", "b", "c"):
        store.register_waiter(run_id, step, "go")
        clock.advance(milliseconds=1)

    store.deliver_signal(run_id, "go", "1", delivered_by="Zoë Ops ✓ (approvals)")
    store.deliver_signal(run_id, "go", "2")
    store.deliver_signal(run_id, "go", failure=SignalFailure(error="E", cause=""), delivered_by="")

    by = {w.step_key: w.delivered_by for w in store.list_waiters(run_id)}
    assert by == {"a": "Zoë Ops ✓ (approvals)", "b": None, "c": ""}
    c = store.get_waiter(run_id, "c")
    assert c is not None and c.failure == SignalFailure(error="E", cause="")


# --- early signals ---------------------------------------------------------------------------


def test_with_no_receiver_a_signal_is_buffered(
    store: FlowSignalStore, run_id: UUID, clock: FakeClock
) -> None:
    result = store.deliver_signal(run_id, "go", '{"early": true}', buffer_for=HOUR)

    assert result == buffered_result(clock.stored_now + HOUR)
    assert store.list_buffered_signals(run_id) == [
        BufferedSignal(
            signal_name="go", buffered_at=clock.stored_now, buffered_until=clock.stored_now + HOUR
        )
    ]
    assert store.list_waiters(run_id) == []
    assert store.list_waiters_page(run_id, limit=10) == []
    assert store.list_buffered_signals(uuid4()) == []


@pytest.mark.parametrize("as_failure", [False, True], ids=["payload", "failure"])
def test_the_next_waiter_receives_a_buffered_signal_when_it_registers(
    store: FlowSignalStore, run_id: UUID, clock: FakeClock, as_failure: bool
) -> None:
    content: dict[str, Any] = (
        {"failure": SignalFailure(error="Rejected", cause="early no")}
        if as_failure
        else {"payload_json": '{"approved": true}'}
    )
    store.deliver_signal(
        run_id,
        " go ",
        **content,
        idempotency_key="click-1",
        delivered_by="webhook",
        buffer_for=HOUR,
    )
    clock.advance(minutes=5)
    deadline = clock.now + timedelta(days=1)

    waiter = store.register_waiter(run_id, "s", "go", deadline, task_token="token-s")

    assert waiter == FlowSignalWaiter(
        run_id=str(run_id),
        step_key="s",
        signal_name="go",
        created_at=clock.stored_now,
        expires_at=deadline.replace(microsecond=deadline.microsecond // 1000 * 1000),
        delivered_at=clock.stored_now,
        payload_json=content.get("payload_json"),
        failure=content.get("failure"),
        delivered_by="webhook",
        idempotency_key="click-1",
        task_token="token-s",
    )
    assert store.get_waiter(run_id, "s") == waiter
    assert store.list_buffered_signals(run_id) == []
    # It was handed over once: the next waiter of the name waits.
    undelivered_next = store.register_waiter(run_id, "t", "go")
    assert undelivered_next.delivered_at is None
    assert store.deliver_signal(run_id, "go", "2").step_key == "t"


def test_buffered_signals_of_a_name_go_oldest_first_one_per_waiter(
    store: FlowSignalStore, run_id: UUID, clock: FakeClock
) -> None:
    sent: list[tuple[str, str, datetime]] = []
    for name, payload in (("go", "1"), ("other", '"x"'), ("go", "2"), ("go", "3")):
        assert store.deliver_signal(run_id, name, payload, buffer_for=HOUR).status is BUFFERED
        sent.append((name, payload, clock.stored_now))
        clock.advance(milliseconds=1)

    def listed(*indexes: int) -> list[BufferedSignal]:
        return [
            BufferedSignal(
                signal_name=sent[i][0], buffered_at=sent[i][2], buffered_until=sent[i][2] + HOUR
            )
            for i in indexes
        ]

    assert store.list_buffered_signals(run_id) == listed(0, 1, 2, 3)
    assert store.register_waiter(run_id, "a", "go").payload_json == "1"
    assert store.list_buffered_signals(run_id) == listed(1, 2, 3)
    assert store.register_waiter(run_id, "b", "go").payload_json == "2"
    assert store.list_buffered_signals(run_id) == listed(1, 3)
    assert store.register_waiter(run_id, "c", "other").payload_json == '"x"'
    assert store.register_waiter(run_id, "d", "go").payload_json == "3"
    assert store.list_buffered_signals(run_id) == []
    assert store.register_waiter(run_id, "e", "go").delivered_at is None
    # Buffered signals were never waiters.
    assert [w.step_key for w in store.list_waiters(run_id)] == ["a", "b", "c", "d", "e"]


def test_buffered_signals_are_never_listed_as_waiters(
    store: FlowSignalStore, run_id: UUID, clock: FakeClock
) -> None:
    for step in ("w1", "w2", "w3"):
        store.register_waiter(run_id, step, f"wait-{step}")
        clock.advance(milliseconds=1)
    for n in range(4):
        store.deliver_signal(run_id, f"early-{n}", "{}", buffer_for=HOUR, idempotency_key=f"k{n}")

    assert len(store.list_buffered_signals(run_id)) == 4
    assert [w.step_key for w in store.list_waiters(run_id)] == ["w1", "w2", "w3"]
    paged: list[str] = []
    after = None
    while page := store.list_waiters_page(run_id, limit=1, after=after):
        paged += [w.step_key for w in page]
        after = page[-1].position
    assert paged == ["w1", "w2", "w3"]
    assert [w.step_key for w in store.list_waiters_page(run_id, limit=50)] == paged


@pytest.mark.parametrize(
    ("late", "received"),
    [(timedelta(milliseconds=-1), True), (timedelta(0), False), (timedelta(days=1), False)],
    ids=["1ms-before-the-deadline", "at-the-deadline", "a-day-after"],
)
def test_a_buffered_signal_is_kept_until_its_deadline_only(
    store: FlowSignalStore, run_id: UUID, clock: FakeClock, late: timedelta, received: bool
) -> None:
    store.deliver_signal(run_id, "go", '"early"', buffer_for=HOUR)
    clock.advance(seconds=(HOUR + late).total_seconds())

    assert len(store.list_buffered_signals(run_id)) == (1 if received else 0)
    waiter = store.register_waiter(run_id, "s", "go")

    assert waiter.payload_json == ('"early"' if received else None)
    assert waiter.is_delivered is received
    assert store.list_buffered_signals(run_id) == []
    if not received:  # the stale signal is gone for good: a fresh delivery is the one received
        assert store.deliver_signal(run_id, "go", '"fresh"').step_key == "s"
        stored = store.get_waiter(run_id, "s")
        assert stored is not None and stored.payload_json == '"fresh"'


def test_an_expired_waiter_neither_receives_nor_consumes_a_buffered_signal(
    store: FlowSignalStore, run_id: UUID, clock: FakeClock
) -> None:
    past = clock.now - timedelta(minutes=1)
    store.register_waiter(run_id, "old", "go", past)
    # With no waiter able to receive, buffer_for buffers instead of answering Expired.
    assert store.deliver_signal(run_id, "go", "1").status is EXPIRED
    assert store.deliver_signal(run_id, "go", "1", buffer_for=HOUR).status is BUFFERED

    late = store.register_waiter(run_id, "late", "go", past)  # registered already expired

    assert late.delivered_at is None
    undelivered(store, run_id, "old")
    assert len(store.list_buffered_signals(run_id)) == 1
    assert store.register_waiter(run_id, "live", "go").payload_json == "1"


def test_a_delivered_waiter_does_not_consume_a_buffered_signal(
    store: FlowSignalStore, run_id: UUID, clock: FakeClock
) -> None:
    store.register_waiter(run_id, "s", "go")
    first = store.deliver_signal(run_id, "go", '"first"')
    clock.advance(seconds=1)
    assert store.deliver_signal(run_id, "go", '"second"').status is ALREADY_DELIVERED
    assert store.deliver_signal(run_id, "go", '"second"', buffer_for=HOUR).status is BUFFERED

    again = store.register_waiter(run_id, "s", "go")

    assert (again.delivered_at, again.payload_json) == (first.delivered_at, '"first"')
    assert len(store.list_buffered_signals(run_id)) == 1
    assert store.register_waiter(run_id, "t", "go").payload_json == '"second"'


@pytest.mark.parametrize("change", ["rename", "extend-the-deadline", "already-waiting"])
def test_re_registering_an_undelivered_waiter_consumes_a_buffered_signal(
    store: FlowSignalStore, run_id: UUID, clock: FakeClock, change: str
) -> None:
    if change == "rename":
        first = store.register_waiter(run_id, "s", "other")
    elif change == "extend-the-deadline":
        first = store.register_waiter(run_id, "s", "go", clock.now - timedelta(seconds=1))
    else:  # the waiter was there first, and buffer_for found it: nothing is buffered
        first = store.register_waiter(run_id, "s", "go")
    clock.advance(minutes=1)
    result = store.deliver_signal(run_id, "go", '"early"', buffer_for=HOUR)
    clock.advance(minutes=1)

    waiter = store.register_waiter(run_id, "s", "go", clock.now + HOUR)

    if change == "already-waiting":
        assert (result.status, result.step_key) == (DELIVERED, "s")
        assert waiter.delivered_at == result.delivered_at
    else:
        assert result.status is BUFFERED
        assert waiter.delivered_at == clock.stored_now
    assert waiter.payload_json == '"early"'
    assert waiter.created_at == first.created_at
    assert store.get_waiter(run_id, "s") == waiter
    assert store.list_buffered_signals(run_id) == []


def test_with_a_receiver_buffer_for_changes_nothing(
    store: FlowSignalStore, run_id: UUID, clock: FakeClock
) -> None:
    store.register_waiter(run_id, "expired", "go", clock.now - timedelta(seconds=1))
    store.register_waiter(run_id, "s", "go")

    result = store.deliver_signal(run_id, "go", "1", buffer_for=HOUR, idempotency_key="k")

    assert result == SignalDeliveryResult(
        status=DELIVERED, step_key="s", delivered_at=clock.stored_now
    )
    assert store.list_buffered_signals(run_id) == []
    # Its retry is the usual replay, not a buffered signal.
    retry = store.deliver_signal(run_id, "go", "1", buffer_for=HOUR, idempotency_key="k")
    assert retry == result.model_copy(update={"replayed": True})
    assert store.list_buffered_signals(run_id) == []


def test_without_buffer_for_nothing_is_buffered(
    store: FlowSignalStore, run_id: UUID, clock: FakeClock
) -> None:
    assert store.deliver_signal(run_id, "go", "1").status is NOT_FOUND
    store.register_waiter(run_id, "x", "exp", clock.now - timedelta(seconds=1))
    assert store.deliver_signal(run_id, "exp", "1").status is EXPIRED
    store.register_waiter(run_id, "d", "done")
    store.deliver_signal(run_id, "done", "1")
    assert store.deliver_signal(run_id, "done", "2").status is ALREADY_DELIVERED
    # A buffered signal of the name does not change the answer either.
    store.deliver_signal(run_id, "kept", "1", buffer_for=HOUR)
    assert store.deliver_signal(run_id, "kept", "2").status is NOT_FOUND

    assert [b.signal_name for b in store.list_buffered_signals(run_id)] == ["kept"]
    for name in ("go", "done"):
        assert store.register_waiter(run_id, f"new-{name}", name).delivered_at is None
    assert store.register_waiter(run_id, "new-kept", "kept").payload_json == "1"


def test_a_retry_keeps_one_buffered_signal_and_replays_its_consumer(
    store: FlowSignalStore, run_id: UUID, clock: FakeClock
) -> None:
    first = store.deliver_signal(run_id, "go", '"first"', idempotency_key="k", buffer_for=HOUR)
    assert first == buffered_result(clock.stored_now + HOUR)
    buffered_at = clock.stored_now
    clock.advance(minutes=1)

    retry = store.deliver_signal(
        run_id, "go", '"retry"', idempotency_key="k", buffer_for=2 * HOUR, delivered_by="again"
    )

    assert retry == buffered_result(buffered_at + HOUR, replayed=True)
    assert store.list_buffered_signals(run_id) == [
        BufferedSignal(signal_name="go", buffered_at=buffered_at, buffered_until=buffered_at + HOUR)
    ]
    # Another key is another signal.
    clock.advance(minutes=1)
    assert store.deliver_signal(run_id, "go", '"other"', idempotency_key="k2", buffer_for=HOUR) == (
        buffered_result(clock.stored_now + HOUR)
    )
    assert len(store.list_buffered_signals(run_id)) == 2

    clock.advance(minutes=1)
    waiter = store.register_waiter(run_id, "s", "go")
    assert (waiter.payload_json, waiter.idempotency_key) == ('"first"', "k")
    assert waiter.delivered_by is None and waiter.delivered_at == clock.stored_now

    clock.advance(minutes=1)
    replay = SignalDeliveryResult(
        status=DELIVERED, step_key="s", delivered_at=waiter.delivered_at, replayed=True
    )
    for buffer_for in (HOUR, None):
        again = store.deliver_signal(
            run_id, "go", '"late retry"', idempotency_key="k", buffer_for=buffer_for
        )
        assert again == replay
    assert [b.buffered_at for b in store.list_buffered_signals(run_id)] == [
        buffered_at + timedelta(minutes=2)
    ]
    assert store.get_waiter(run_id, "s") == waiter


def test_an_unkeyed_repeat_is_another_buffered_signal(
    store: FlowSignalStore, run_id: UUID, clock: FakeClock
) -> None:
    store.deliver_signal(run_id, "go", "1", buffer_for=HOUR)
    clock.advance(milliseconds=1)
    store.deliver_signal(run_id, "go", "1", buffer_for=HOUR)

    assert len(store.list_buffered_signals(run_id)) == 2
    assert store.register_waiter(run_id, "a", "go").payload_json == "1"
    assert store.register_waiter(run_id, "b", "go").payload_json == "1"
    assert store.list_buffered_signals(run_id) == []


def test_buffered_signals_belong_to_their_run(
    store: FlowSignalStore, run_id: UUID, clock: FakeClock
) -> None:
    other_run = uuid4()
    store.deliver_signal(run_id, "go", '"mine"', buffer_for=HOUR)

    assert store.register_waiter(other_run, "s", "go").delivered_at is None
    assert store.list_buffered_signals(other_run) == []
    assert store.register_waiter(str(run_id).upper(), "s", "go").payload_json == '"mine"'


# --- edges found by hostile testing ---------------------------------------------------------


def test_a_buffered_deadline_is_whole_milliseconds_and_answered_the_same_every_time(
    store: FlowSignalStore, run_id: UUID, clock: FakeClock
) -> None:
    buffer_for = timedelta(seconds=1, microseconds=700)

    first = store.deliver_signal(run_id, "go", "1", idempotency_key="k", buffer_for=buffer_for)
    retry = store.deliver_signal(run_id, "go", "1", idempotency_key="k", buffer_for=buffer_for)
    (listed,) = store.list_buffered_signals(run_id)

    assert first.expires_at is not None
    assert first.expires_at.microsecond % 1000 == 0, "every timestamp is whole milliseconds"
    assert retry.expires_at == first.expires_at == listed.buffered_until


def test_an_unchecked_failure_instance_is_still_refused(
    store: FlowSignalStore, run_id: UUID
) -> None:
    store.register_waiter(run_id, "s", "go")
    bad = SignalFailure(error="Rejected").model_copy(update={"error": "Rejected\nInjected"})

    with pytest.raises(InvalidSignalRequest, match=r"failure\.error"):
        store.deliver_signal(run_id, "go", failure=bad)
    undelivered(store, run_id, "s")


def test_signals_buffered_in_one_millisecond_are_consumed_in_the_order_sent(
    backend: Backend, run_id: UUID
) -> None:
    store = backend.store
    for n in range(8):  # the clock stands still: one millisecond
        store.deliver_signal(run_id, "go", str(n), buffer_for=HOUR)

    received = [store.register_waiter(run_id, f"s{n}", "go").payload_json for n in range(8)]

    assert received == [str(n) for n in range(8)]


# --- the DynamoDB rows ----------------------------------------------------------------------


def partition(backend: Backend, run: UUID) -> dict[str, dict[str, Any]]:
    """Every row of the run, by sort key."""
    response = backend.client.query(
        TableName=backend.table_name,
        KeyConditionExpression="RunId = :run",
        ExpressionAttributeValues={":run": {"S": str(run)}},
        ConsistentRead=True,
    )
    return {item["StepKey"]["S"]: item for item in response["Items"]}


def indexed(backend: Backend, run: UUID, name: str) -> list[dict[str, Any]]:
    response = backend.client.query(
        TableName=backend.table_name,
        IndexName=SIGNAL_INDEX,
        KeyConditionExpression="RunId = :run AND SignalName = :name",
        ExpressionAttributeValues={":run": {"S": str(run)}, ":name": {"S": name}},
    )
    items: list[dict[str, Any]] = response["Items"]
    return items


def the_buffered_row(backend: Backend, run: UUID) -> dict[str, Any]:
    rows = [row for key, row in partition(backend, run).items() if key.startswith(BUFFERED_PREFIX)]
    assert len(rows) == 1, rows
    return rows[0]


def ttl_of(until: datetime) -> dict[str, str]:
    return {"N": str(int(until.timestamp()) + RETENTION_SECONDS)}


def test_a_buffered_row_stays_out_of_the_waiters_keys_and_index(
    dynamodb_backend: Backend, run_id: UUID, clock: FakeClock
) -> None:
    store = dynamodb_backend.store
    store.register_waiter(run_id, "w", "other")
    store.deliver_signal(
        run_id, "go", '{"early": true}', idempotency_key="k-1", delivered_by="hook", buffer_for=HOUR
    )

    row = the_buffered_row(dynamodb_backend, run_id)
    until = clock.stored_now + HOUR

    assert row["StepKey"]["S"].startswith(BUFFERED_PREFIX)
    assert "SignalName" not in row
    assert row["BufferedSignalName"] == {"S": "go"}
    assert row["BufferedAt"] == {"S": format_timestamp(clock.stored_now)}
    assert row["BufferedUntil"] == {"S": format_timestamp(until)}
    assert row["Ttl"] == ttl_of(until)
    assert row["PayloadJson"] == {"S": '{"early": true}'}
    assert row["IdempotencyKey"] == {"S": "k-1"}
    assert row["DeliveredBy"] == {"S": "hook"}
    assert "FailureError" not in row and "FailureCause" not in row
    # The signal-name index holds the waiter, never the buffered row.
    assert indexed(dynamodb_backend, run_id, "go") == []
    assert [i["StepKey"]["S"] for i in indexed(dynamodb_backend, run_id, "other")] == ["w"]


def test_a_buffered_failure_row_and_the_waiter_it_is_handed_to(
    dynamodb_backend: Backend, run_id: UUID, clock: FakeClock
) -> None:
    store = dynamodb_backend.store
    failure = SignalFailure(error="Rejected", cause="too late")
    store.deliver_signal(run_id, "go", failure=failure, delivered_by="ops", buffer_for=THIRTY_DAYS)

    row = the_buffered_row(dynamodb_backend, run_id)
    assert row["FailureError"] == {"S": "Rejected"} and row["FailureCause"] == {"S": "too late"}
    assert "PayloadJson" not in row and "SignalName" not in row
    assert row["Ttl"] == ttl_of(clock.stored_now + THIRTY_DAYS)

    clock.advance(minutes=1)
    store.register_waiter(run_id, "s", "go")

    rows = partition(dynamodb_backend, run_id)
    assert list(rows) == ["s"], "the buffered row is consumed with the hand-over"
    waiter = rows["s"]
    assert waiter["FailureError"] == {"S": "Rejected"} and waiter["FailureCause"] == {
        "S": "too late"
    }
    assert waiter["DeliveredBy"] == {"S": "ops"}
    assert waiter["DeliveredAt"] == {"S": format_timestamp(clock.stored_now)}
    assert "PayloadJson" not in waiter


def test_a_failure_delivery_writes_the_failure_and_no_payload(
    dynamodb_backend: Backend, run_id: UUID
) -> None:
    store = dynamodb_backend.store
    store.register_waiter(run_id, "a", "go")
    store.register_waiter(run_id, "b", "go")

    store.deliver_signal(run_id, "go", failure=SignalFailure(error="Rejected"), delivered_by="bob")
    store.deliver_signal(run_id, "go", "[1]")

    a = dynamodb_backend.raw_item(run_id, "a")
    assert a is not None
    assert a["FailureError"] == {"S": "Rejected"} and a["DeliveredBy"] == {"S": "bob"}
    assert "FailureCause" not in a and "PayloadJson" not in a
    b = dynamodb_backend.raw_item(run_id, "b")
    assert b is not None
    assert b["PayloadJson"] == {"S": "[1]"}
    assert "FailureError" not in b and "DeliveredBy" not in b


# --- races: a buffered delivery crossing a registration --------------------------------------

RACE_RUNS = 240
RUNS_AT_ONCE = 8
# Seconds by which one side of a crossing may start late.
HEAD_STARTS = (0.0, 0.0, 0.0, 0.001, 0.002, 0.004, 0.008, 0.016)


@pytest.fixture(scope="module")
def race_client(dynamodb_local_endpoint: str) -> Any:
    """A DynamoDB Local client with a connection for every thread of a batch."""
    return dynamodb_local_client(dynamodb_local_endpoint, max_pool_connections=32)


@pytest.fixture(params=["memory", pytest.param("dynamodb-local", marks=pytest.mark.dynamodb_local)])
def race_store(request: pytest.FixtureRequest, clock: FakeClock) -> FlowSignalStore:
    if request.param == "memory":
        return make_backend("memory", request, clock).store
    _, table = request.getfixturevalue("dynamodb_local_table")
    return DynamoDBFlowSignalStore(
        table, client=request.getfixturevalue("race_client"), clock=clock
    )


def released_together(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run each call on its own thread, released together by a barrier; an exception is
    returned as the call's outcome."""
    start = threading.Barrier(len(calls))

    def run(call: Callable[[], Any]) -> Any:
        start.wait()
        try:
            return call()
        except Exception as error:
            return error

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def later(seconds: float, call: Callable[[], Any]) -> Callable[[], Any]:
    """``call``, once ``seconds`` have passed (a scheduling nudge, never asserted on)."""

    def delayed() -> Any:
        if seconds:
            time.sleep(seconds)
        return call()

    return delayed


def in_batches(
    runs: int, per_run: Callable[[UUID], list[Callable[[], Any]]]
) -> list[tuple[UUID, list[Any]]]:
    """``runs`` fresh runs, RUNS_AT_ONCE at a time, all the calls of a batch released
    together; each run with its calls' outcomes, in order. Fails on any exception.

    In each run one call, drawn at random, may start a little late (HEAD_STARTS), so the
    crossings spread over every interleaving of the calls' reads and writes."""
    head_starts = random.Random(runs)
    outcomes: list[tuple[UUID, list[Any]]] = []
    for _ in range(0, runs, RUNS_AT_ONCE):
        batch = [uuid4() for _ in range(RUNS_AT_ONCE)]
        calls = [per_run(run) for run in batch]
        for run_calls in calls:
            late = head_starts.randrange(len(run_calls))
            run_calls[late] = later(head_starts.choice(HEAD_STARTS), run_calls[late])
        flat = released_together([call for run_calls in calls for call in run_calls])
        width = len(calls[0])
        outcomes += [(run, flat[i * width : (i + 1) * width]) for i, run in enumerate(batch)]
    raised = [(run, o) for run, results in outcomes for o in results if isinstance(o, Exception)]
    assert not raised, f"{len(raised)} calls raised: {raised[:5]}"
    return outcomes


def test_a_buffered_delivery_crossing_a_registration_is_received_exactly_once(
    race_store: FlowSignalStore,
) -> None:
    store = race_store

    def pair(run: UUID) -> list[Callable[[], Any]]:
        return [
            lambda: store.deliver_signal(run, "go", f'"{run}"', buffer_for=HOUR),
            lambda: store.register_waiter(run, "s", "go"),
        ]

    broken: list[str] = []
    paths: Counter[str] = Counter()
    for run, (result, registered) in in_batches(RACE_RUNS, pair):
        payload = f'"{run}"'
        waiter = store.get_waiter(run, "s")
        left = store.list_buffered_signals(run)
        answer_ok = (result.status, result.step_key) == (DELIVERED, "s") or (
            result.status is BUFFERED and not result.replayed and result.expires_at is not None
        )
        if (
            not answer_ok
            or waiter is None
            or waiter.payload_json != payload
            or left != []
            or registered.payload_json not in (None, payload)
        ):
            broken.append(f"{run}: {result!r} / registered {registered!r} / now {waiter!r}, {left}")
        paths[
            f"{result.status}, registration {'received' if registered.is_delivered else 'waited'}"
        ] += 1
    assert not broken, f"{len(broken)} of {RACE_RUNS} runs broken ({dict(paths)}): {broken[:3]}"


def test_two_registrations_racing_one_buffered_delivery_one_receives(
    race_store: FlowSignalStore,
) -> None:
    store = race_store

    def trio(run: UUID) -> list[Callable[[], Any]]:
        return [
            lambda: store.deliver_signal(run, "go", f'"{run}"', buffer_for=HOUR),
            lambda: store.register_waiter(run, "a", "go"),
            lambda: store.register_waiter(run, "b", "go"),
        ]

    broken: list[str] = []
    for run, (result, *_) in in_batches(96, trio):
        waiters = store.list_waiters(run)
        received = [w.step_key for w in waiters if w.payload_json == f'"{run}"']
        left = store.list_buffered_signals(run)
        answer_ok = result.status is BUFFERED or (
            result.status is DELIVERED and result.step_key in received
        )
        if (
            len(waiters) != 2
            or len(received) != 1
            or sum(w.is_delivered for w in waiters) != 1
            or left != []
            or not answer_ok
        ):
            broken.append(f"{run}: {result!r} / {waiters!r} / {left}")
    assert not broken, f"{len(broken)} runs broken: {broken[:3]}"


def test_two_buffered_deliveries_racing_one_registration_lose_nothing(
    race_store: FlowSignalStore,
) -> None:
    store = race_store

    def trio(run: UUID) -> list[Callable[[], Any]]:
        return [
            lambda: store.deliver_signal(run, "go", '"one"', buffer_for=HOUR),
            lambda: store.deliver_signal(run, "go", '"two"', buffer_for=HOUR),
            lambda: store.register_waiter(run, "s", "go"),
        ]

    broken: list[str] = []
    for run, (first, second, _) in in_batches(96, trio):
        waiter = store.get_waiter(run, "s")
        left = store.list_buffered_signals(run)
        answers = [(r.status, r.step_key) for r in (first, second)]
        if (
            waiter is None
            or waiter.payload_json not in ('"one"', '"two"')
            or len(left) != 1
            or answers.count((DELIVERED, "s")) > 1
            or not all(a in ((DELIVERED, "s"), (BUFFERED, None)) for a in answers)
        ):
            broken.append(f"{run}: {first!r}, {second!r} / {waiter!r} / {left}")
            continue
        # The one still buffered is the other signal: nothing was lost, nothing doubled.
        next_waiter = store.register_waiter(run, "t", "go")
        if {waiter.payload_json, next_waiter.payload_json} != {'"one"', '"two"'}:
            broken.append(f"{run}: s got {waiter.payload_json}, t got {next_waiter.payload_json}")
        elif store.list_buffered_signals(run) != []:
            broken.append(f"{run}: still buffered after both waiters")
    assert not broken, f"{len(broken)} runs broken: {broken[:3]}"


def test_a_key_is_one_signal_per_name_not_per_run(store: FlowSignalStore, run_id: UUID) -> None:
    first = store.deliver_signal(run_id, "go", "1", idempotency_key="k", buffer_for=HOUR)
    other = store.deliver_signal(run_id, "Go", "2", idempotency_key="k", buffer_for=HOUR)
    assert (first.replayed, other.replayed) == (False, False)
    assert sorted(s.signal_name for s in store.list_buffered_signals(run_id)) == ["Go", "go"]
