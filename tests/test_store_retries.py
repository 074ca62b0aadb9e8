"""A StoreUnavailable means nothing is stored that a retry would write twice, and an answer says
what is stored: the early-signal protocols across two writes, under DynamoDB's failures and
races, on DynamoDB Local."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from botocore.awsrequest import AWSResponse

from conftest import dynamodb_local_client
from flowsignals import DynamoDBFlowSignalStore, SignalDeliveryStatus, StoreUnavailable

pytestmark = pytest.mark.dynamodb_local

HOUR = timedelta(hours=1)


class _Body:
    def __init__(self, content: bytes) -> None:
        self._content = content

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._content


def _operation(request: Any) -> str:
    return str(request.headers["X-Amz-Target"].decode().split(".")[-1])


@contextmanager
def failing_after_put(client: Any, failing: Callable[[str], bool]) -> Iterator[list[str]]:
    """Once a PutItem went through, every request ``failing`` names gets a 500 (after
    botocore's retries, StoreUnavailable); yields the operations that failed."""
    failed: list[str] = []
    put = threading.Event()
    body = json.dumps({"__type": "com.amazonaws.dynamodb.v20120810#InternalServerError"})

    def answer(request: Any, **_: Any) -> AWSResponse | None:
        operation = _operation(request)
        if not put.is_set() or not failing(operation):
            if operation == "PutItem":
                put.set()
            return None
        failed.append(operation)
        headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": "test"}
        return AWSResponse(request.url, 500, headers, _Body(body.encode()))

    client.meta.events.register_first("before-send.dynamodb", answer)
    try:
        yield failed
    finally:
        client.meta.events.unregister("before-send.dynamodb", answer)


@pytest.fixture
def stores(
    dynamodb_local_endpoint: str, dynamodb_local_table: tuple[Any, str], no_retry_backoff: None
) -> tuple[Any, DynamoDBFlowSignalStore, DynamoDBFlowSignalStore]:
    """A store with its own client (for fault hooks), and a healthy one on the same table."""
    client = dynamodb_local_client(dynamodb_local_endpoint)
    shared, table = dynamodb_local_table
    healthy = DynamoDBFlowSignalStore(table, client=shared)
    return client, DynamoDBFlowSignalStore(table, client=client), healthy


def _received(store: DynamoDBFlowSignalStore, run: UUID, steps: list[str]) -> list[str]:
    """Register each step for "go"; the steps that an early signal reached."""
    return [s for s in steps if store.register_waiter(run, s, "go").delivered_at is not None]


def test_an_early_signal_that_could_not_be_offered_is_withdrawn_before_store_unavailable(
    stores: tuple[Any, DynamoDBFlowSignalStore, DynamoDBFlowSignalStore],
) -> None:
    """The delivery buffered its signal, then could not read the waiters again: it deletes
    its row and raises, so the caller's keyless retry leaves exactly one early signal."""
    client, store, healthy = stores
    run = uuid4()
    with (
        failing_after_put(client, lambda operation: operation == "Query") as failed,
        pytest.raises(StoreUnavailable, match="nothing was stored"),
    ):
        store.deliver_signal(run, "go", '{"n": 1}', buffer_for=HOUR)
    assert failed, "the read after the write failed"
    assert healthy.list_buffered_signals(run) == []

    retried = store.deliver_signal(run, "go", '{"n": 1}', buffer_for=HOUR)

    assert retried.status is SignalDeliveryStatus.BUFFERED
    assert _received(healthy, run, ["first", "second"]) == ["first"]


def test_an_early_signal_that_cannot_be_withdrawn_either_is_answered_buffered(
    stores: tuple[Any, DynamoDBFlowSignalStore, DynamoDBFlowSignalStore],
) -> None:
    """Everything after the write fails: the signal is stored, so the answer says so (a
    StoreUnavailable would invite a retry that buffers a second copy)."""
    client, store, healthy = stores
    run = uuid4()
    with failing_after_put(client, lambda operation: True) as failed:
        result = store.deliver_signal(run, "go", '{"n": 1}', buffer_for=HOUR)
    assert "DeleteItem" in failed

    assert result.status is SignalDeliveryStatus.BUFFERED
    assert [signal.signal_name for signal in healthy.list_buffered_signals(run)] == ["go"]
    assert _received(healthy, run, ["first", "second"]) == ["first"]


def test_a_registration_whose_early_signal_a_twin_registration_took_answers_delivered(
    stores: tuple[Any, DynamoDBFlowSignalStore, DynamoDBFlowSignalStore],
) -> None:
    """Two registrations of one step, an early signal waiting: the one whose hand-over lost
    to the other's answers the row as stored (delivered), not the waiter it wrote."""
    client, store, healthy = stores
    run = uuid4()
    healthy.deliver_signal(run, "go", '{"early": true}', buffer_for=HOUR)
    twin: list[Any] = []

    def register_the_twin_first(request: Any, **_: Any) -> None:
        if _operation(request) == "TransactWriteItems" and not twin:
            twin.append(healthy.register_waiter(run, "s", "go"))

    client.meta.events.register_first("before-send.dynamodb", register_the_twin_first)
    try:
        mine = store.register_waiter(run, "s", "go")
    finally:
        client.meta.events.unregister("before-send.dynamodb", register_the_twin_first)

    assert twin and twin[0].delivered_at is not None  # the twin took the signal
    stored = healthy.get_waiter(run, "s")
    assert stored is not None and stored.payload_json == '{"early": true}'
    assert (mine.delivered_at, mine.payload_json) == (stored.delivered_at, stored.payload_json)


def test_concurrent_registrations_of_one_step_share_one_early_signal(
    dynamodb_local_table: tuple[Any, str],
) -> None:
    """Eight registrations of one step at once, one early signal: it is handed over once,
    and every answer that says delivered says the stored delivery (one that wrote before the
    hand-over and read after it may answer its row as written: Waiting)."""
    client, table = dynamodb_local_table
    store = DynamoDBFlowSignalStore(table, client=client)
    for _ in range(5):
        run = uuid4()
        store.deliver_signal(run, "go", '{"early": true}', buffer_for=HOUR)
        barrier = threading.Barrier(8)
        answers: list[Any] = []

        def register(
            run: UUID = run, barrier: threading.Barrier = barrier, answers: list[Any] = answers
        ) -> None:
            barrier.wait()
            answers.append(store.register_waiter(run, "s", "go"))

        threads = [threading.Thread(target=register) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert len(answers) == 8, "every registration answered"
        stored = store.get_waiter(run, "s")
        assert stored is not None and stored.payload_json == '{"early": true}'
        assert store.list_buffered_signals(run) == []
        claimed = {(a.delivered_at, a.payload_json) for a in answers if a.delivered_at}
        assert claimed == {(stored.delivered_at, stored.payload_json)}
