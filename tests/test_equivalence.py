"""Property: on any sequence of operations, the DynamoDB backend (moto and DynamoDB Local) answers
exactly as the in-memory store does: the same results, the same errors."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import TABLE_NAME, FakeClock
from flowsignals import (
    DynamoDBFlowSignalStore,
    FlowSignalStore,
    InMemoryFlowSignalStore,
    SignalFailure,
)

# Small pools, so that operations meet: the same waiters, names and deadlines again and again.
STEP_KEYS = st.sampled_from(["a", "b", "c", "a", "b", " d", ""])
SIGNAL_NAMES = st.sampled_from(["go", "go", "go", "go", " go ", "Go", "stop", " "])
PAYLOADS = st.sampled_from(["1", '{"n": 2}', "null", "1", "1", "NaN", "Rejected", None])
IDEMPOTENCY_KEYS = st.sampled_from([None, None, "k1", "k2"])
DEADLINES = st.one_of(st.none(), st.integers(min_value=-1, max_value=4))
TOKENS = st.sampled_from([None, "token"])
RUNS = st.sampled_from([0, 0, 0, 1])

REGISTER = st.tuples(st.just("register"), RUNS, STEP_KEYS, SIGNAL_NAMES, DEADLINES, TOKENS)
BUFFERS = st.sampled_from([None, None, 1, 3])
DELIVER = st.tuples(
    st.just("deliver"), RUNS, SIGNAL_NAMES, PAYLOADS, IDEMPOTENCY_KEYS, BUFFERS, TOKENS
)
ADVANCE = st.tuples(st.just("advance"), st.integers(min_value=0, max_value=2))
OPERATIONS = st.one_of(
    REGISTER,
    REGISTER,
    DELIVER,
    DELIVER,
    DELIVER,
    ADVANCE,
    ADVANCE,
    st.tuples(st.just("get"), RUNS, STEP_KEYS),
    st.tuples(st.just("remove"), RUNS, STEP_KEYS),
    st.tuples(st.just("list"), RUNS),
    st.tuples(st.just("list by name"), RUNS, SIGNAL_NAMES),
    st.tuples(st.just("signal's waiters"), RUNS, SIGNAL_NAMES),
    st.tuples(st.just("signals"), RUNS),
)


def apply(
    store: FlowSignalStore, runs: list[UUID], clock: FakeClock, operation: tuple[Any, ...]
) -> Any:
    """The operation's answer, or the type of the error it raised."""
    kind, *args = operation
    try:
        if kind == "register":
            run, step_key, name, deadline, token = args
            expires_at = None if deadline is None else clock.now + timedelta(seconds=deadline)
            return store.register_waiter(runs[run], step_key, name, expires_at, task_token=token)
        if kind == "deliver":
            run, name, payload, key, buffer, by = args
            # "Rejected" stands for a failure signal; None for neither payload nor failure.
            failure = SignalFailure(error=payload) if payload == "Rejected" else None
            return store.deliver_signal(
                runs[run],
                name,
                None if failure is not None else payload,
                failure=failure,
                idempotency_key=key,
                delivered_by=by,
                buffer_for=None if buffer is None else timedelta(seconds=buffer),
            )
        if kind == "get":
            return store.get_waiter(runs[args[0]], args[1])
        if kind == "remove":
            return store.remove_waiter(runs[args[0]], args[1])
        if kind == "list":
            return store.list_waiters(runs[args[0]])
        if kind == "list by name":
            return store.list_waiters(runs[args[0]], signal_name=args[1])
        if kind == "signal's waiters":
            return store.signal_waiters(runs[args[0]], args[1])
        if kind == "signals":
            return store.list_buffered_signals(runs[args[0]])
    except Exception as error:  # the error's type is the answer compared
        return type(error)
    raise AssertionError(f"unknown operation {kind}")


def replay_both(dynamodb: Callable[[FakeClock], FlowSignalStore], operations: list[Any]) -> None:
    clock = FakeClock()  # one clock: both stores see the same instants
    memory, other = InMemoryFlowSignalStore(clock=clock), dynamodb(clock)
    runs = [uuid4(), uuid4()]
    for step, operation in enumerate(operations):
        if operation[0] == "advance":
            clock.advance(seconds=operation[1])
            continue
        expected = apply(memory, runs, clock, operation)
        assert apply(other, runs, clock, operation) == expected, (step, operation)


@pytest.fixture(params=["moto", pytest.param("dynamodb-local", marks=pytest.mark.dynamodb_local)])
def dynamodb_store(request: pytest.FixtureRequest) -> Callable[[FakeClock], FlowSignalStore]:
    """A DynamoDB store on the given clock. One table for the whole test: every example uses
    fresh run ids."""
    if request.param == "moto":
        client, table = request.getfixturevalue("moto_client"), TABLE_NAME
    else:
        client, table = request.getfixturevalue("dynamodb_local_table")
    return lambda clock: DynamoDBFlowSignalStore(table, client=client, clock=clock)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(operations=st.lists(OPERATIONS, min_size=5, max_size=40))
def test_dynamodb_answers_as_the_in_memory_store(
    dynamodb_store: Callable[[FakeClock], FlowSignalStore], operations: list[Any]
) -> None:
    replay_both(dynamodb_store, operations)
