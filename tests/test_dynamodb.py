"""The DynamoDB backend's own promises (docs/design.md): the row layout, Ttl, the requests
each operation makes, a lagging index, and failures of DynamoDB itself."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, NamedTuple
from uuid import UUID, uuid4

import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from botocore.httpsession import URLLib3Session

from conftest import TABLE_NAME, Backend, FakeClock, dynamodb_local_client, silent_endpoint
from flowsignals import (
    DynamoDBFlowSignalStore,
    FlowSignalError,
    SignalDeliveryStatus,
    StoreUnavailable,
)
from flowsignals.backends.dynamodb import (
    DECISION_INDEX,
    SIGNAL_INDEX,
    answer_within,
    default_client,
)
from flowsignals.core.values import parse_timestamp
from flowsignals.testing import consumed_capacity, record_requests

DAY = 86_400


def epoch(text: str) -> int:
    return int(parse_timestamp(text).timestamp())


def test_rows_use_the_documented_attributes_and_formats(
    dynamodb_backend: Backend, clock: FakeClock
) -> None:
    store, run = dynamodb_backend.store, uuid4()
    store.register_waiter(
        str(run).upper(), "Step 1", " approve ", clock.now + timedelta(hours=1), task_token="tok"
    )
    clock.advance(minutes=1)
    store.deliver_signal(run, "approve", '{"ok": true}', idempotency_key="req-1")

    item = dynamodb_backend.raw_item(run, "Step 1")

    assert item is not None
    assert re.fullmatch("[0-9a-f]{32}", item.pop("DeliveryId")["S"])  # the delivering attempt
    assert item == {
        "RunId": {"S": str(run)},
        "StepKey": {"S": "Step 1"},
        "SignalName": {"S": "approve"},
        "CreatedAt": {"S": "2096-11-23T10:15:30.123Z"},
        "ExpiresAt": {"S": "2096-11-23T11:15:30.123Z"},
        "DeliveredAt": {"S": "2096-11-23T10:16:30.123Z"},
        "PayloadJson": {"S": '{"ok": true}'},
        "IdempotencyKey": {"S": "req-1"},
        "TaskToken": {"S": "tok"},
        "Ttl": {"N": str(epoch("2096-11-23T10:16:30.123Z") + 7 * DAY)},
    }


def test_ttl_follows_the_deadline_then_the_delivery(
    dynamodb_backend: Backend, clock: FakeClock
) -> None:
    store, run = dynamodb_backend.store, uuid4()

    def ttl() -> int | None:
        item = dynamodb_backend.raw_item(run, "s")
        assert item is not None
        return int(item["Ttl"]["N"]) if "Ttl" in item else None

    store.register_waiter(run, "s", "go")
    assert ttl() is None  # no deadline: kept until removed

    waiter = store.register_waiter(run, "s", "go", clock.now + timedelta(hours=2))
    assert waiter.expires_at is not None
    assert ttl() == int(waiter.expires_at.timestamp()) + 7 * DAY

    store.register_waiter(run, "s", "go")
    assert ttl() is None

    clock.advance(minutes=3)
    delivered_at = store.deliver_signal(run, "go", "{}").delivered_at
    assert delivered_at is not None
    tombstone = int(delivered_at.timestamp()) + 7 * DAY
    assert ttl() == tombstone

    clock.advance(days=2)
    store.register_waiter(run, "s", "go", clock.now + timedelta(days=30))
    assert ttl() == tombstone  # a late re-run keeps the delivery's tombstone
    store.register_waiter(run, "s", "go")
    assert ttl() == tombstone


def test_retention_is_configurable(dynamodb_backend: Backend, clock: FakeClock) -> None:
    store = DynamoDBFlowSignalStore(
        dynamodb_backend.table_name,
        client=dynamodb_backend.client,
        clock=clock,
        retention=timedelta(hours=1),
    )
    run = uuid4()
    waiter = store.register_waiter(run, "s", "go", clock.now)
    item = dynamodb_backend.raw_item(run, "s")
    assert waiter.expires_at is not None and item is not None
    assert int(item["Ttl"]["N"]) == int(waiter.expires_at.timestamp()) + 3600


def test_negative_retention_is_refused() -> None:
    with pytest.raises(ValueError, match="retention"):
        DynamoDBFlowSignalStore(TABLE_NAME, client=object(), retention=timedelta(seconds=-1))


# --- requests per operation ----------------------------------------------------------------


def operations(requests: list[Any]) -> list[str]:
    return [request.operation for request in requests]


def test_each_operation_makes_the_budgeted_requests(dynamodb_backend: Backend) -> None:
    store, client, run = dynamodb_backend.store, dynamodb_backend.client, uuid4()

    with record_requests(client) as register:
        store.register_waiter(run, "s", "go")
    with record_requests(client) as deliver_hit:
        store.deliver_signal(run, "go", "{}")
    with record_requests(client) as deliver_miss:
        store.deliver_signal(run, "absent", "{}")
    with record_requests(client) as get:
        store.get_waiter(run, "s")
    with record_requests(client) as remove:
        store.remove_waiter(run, "s")
    with record_requests(client) as listing:
        store.list_waiters(run)

    # The registration, then a consistent look for an early signal of its name.
    assert operations(register) == ["UpdateItem", "Query"]
    assert register[1].params["ConsistentRead"] is True
    assert "begins_with(StepKey" in register[1].params["KeyConditionExpression"]
    assert operations(deliver_hit) == ["Query", "UpdateItem"]
    assert deliver_hit[0].params["ConsistentRead"] is True
    assert deliver_hit[0].params["IndexName"] == DECISION_INDEX
    assert deliver_hit[1].params["ReturnValuesOnConditionCheckFailure"] == "ALL_OLD"
    assert "attribute_not_exists(DeliveredAt)" in deliver_hit[1].params["ConditionExpression"]
    assert operations(deliver_miss) == ["Query"]
    assert deliver_miss[0].params["ConsistentRead"] is True
    assert operations(get) == ["GetItem"]
    assert get[0].params["ConsistentRead"] is True
    assert operations(remove) == ["DeleteItem"]
    assert operations(listing) == ["Query"]


def test_a_keyed_delivery_reads_the_table_once_and_a_replay_writes_nothing(
    dynamodb_backend: Backend,
) -> None:
    store, client, run = dynamodb_backend.store, dynamodb_backend.client, uuid4()
    store.register_waiter(run, "s", "go")

    with record_requests(client) as first:
        store.deliver_signal(run, "go", "{}", idempotency_key="k")
    with record_requests(client) as replay:
        result = store.deliver_signal(run, "go", "{}", idempotency_key="k")

    assert operations(first) == ["Query", "UpdateItem"]
    assert first[0].params["ConsistentRead"] is True
    assert operations(replay) == ["Query"]
    assert result.replayed


@pytest.mark.dynamodb_local
def test_list_pages_through_more_than_one_megabyte(
    dynamodb_local_table: tuple[Any, str], clock: FakeClock
) -> None:
    client, table = dynamodb_local_table
    store = DynamoDBFlowSignalStore(table, client=client, clock=clock)
    run = uuid4()
    for n in range(6):  # 1.5 MB
        store.register_waiter(run, f"step-{n}", f"signal-{n}")
        store.deliver_signal(run, f"signal-{n}", json.dumps("x" * 250_000))

    with record_requests(client) as requests:
        waiters = store.list_waiters(run)

    assert len(waiters) == 6
    assert operations(requests) == ["Query", "Query"]
    assert "ExclusiveStartKey" in requests[1].params


@pytest.mark.dynamodb_local
def test_a_name_whose_waiters_hold_megabytes_is_decided_without_reading_them(
    dynamodb_local_table: tuple[Any, str], clock: FakeClock
) -> None:
    client, table = dynamodb_local_table
    store = DynamoDBFlowSignalStore(table, client=client, clock=clock)
    run = uuid4()
    for n in range(6):  # each delivered with ~250 KB: the name holds 1.5 MB of payloads
        store.register_waiter(run, f"step-{n}", "go")
        clock.advance(milliseconds=1)
        store.deliver_signal(run, "go", json.dumps("x" * 250_000))
    store.register_waiter(run, "step-6", "go")

    with record_requests(client, consumed_capacity=True) as requests:
        result = store.deliver_signal(run, "go", "{}")

    assert (result.status, result.step_key) == (SignalDeliveryStatus.DELIVERED, "step-6")
    *reads, write = requests
    assert write.operation == "UpdateItem"
    # The index holds no payload: its entries are read, never the table's rows. (DynamoDB
    # Local cuts an index's pages at 1 MB of the table's rows, so it may take two queries;
    # each costs the 1 unit its entries' few hundred bytes cost.)
    assert {r.operation for r in reads} == {"Query"}
    assert all(r.consumed_capacity["Table"]["CapacityUnits"] == 0 for r in reads)
    assert consumed_capacity(reads) == (len(reads), 0.0)


@pytest.mark.dynamodb_local
def test_many_waiters_of_one_name_page_through_the_consistent_read(
    dynamodb_local_table: tuple[Any, str], clock: FakeClock
) -> None:
    client, table = dynamodb_local_table
    store = DynamoDBFlowSignalStore(table, client=client, clock=clock)
    run = str(uuid4())
    # Over 1 MB of index entries: 2,200 delivered waiters with long step and idempotency keys
    # (written as deliveries leave them, in batches: 2,200 deliveries would take minutes).
    at = "2096-11-23T10:15:30.123Z"
    rows = [
        {
            "RunId": {"S": run},
            "StepKey": {"S": f"{n:04d}-" + "s" * 250},
            "SignalName": {"S": "go"},
            "CreatedAt": {"S": at},
            "DeliveredAt": {"S": at},
            "PayloadJson": {"S": "{}"},
            "IdempotencyKey": {"S": f"{n:04d}" + "k" * 120},
        }
        for n in range(2200)
    ]
    for start in range(0, len(rows), 25):
        batch = [{"PutRequest": {"Item": row}} for row in rows[start : start + 25]]
        client.batch_write_item(RequestItems={table: batch})
    store.register_waiter(run, "live", "go")

    with record_requests(client) as requests:
        result = store.deliver_signal(run, "go", "{}")

    assert (result.status, result.step_key) == (SignalDeliveryStatus.DELIVERED, "live")
    assert operations(requests) == ["Query", "Query", "UpdateItem"]
    assert "ExclusiveStartKey" in requests[1].params


# --- a lagging index -----------------------------------------------------------------------


@contextmanager
def index_shows_only(client: Any, step_keys: set[str]) -> Iterator[None]:
    """Every query of the index answers as an index that has not caught up would: only the
    rows of ``step_keys``, whatever the table holds."""

    def mark(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        # Only the global index lags: the local one is read strongly consistently.
        context["reads_index"] = params.get("IndexName") == SIGNAL_INDEX

    def stale(parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if context.get("reads_index"):
            items = [i for i in parsed.get("Items", []) if i["StepKey"]["S"] in step_keys]
            parsed.update(Items=items, Count=len(items), ScannedCount=len(items))

    client.meta.events.register("provide-client-params.dynamodb.Query", mark)
    client.meta.events.register("after-call.dynamodb.Query", stale)
    try:
        yield
    finally:
        client.meta.events.unregister("provide-client-params.dynamodb.Query", mark)
        client.meta.events.unregister("after-call.dynamodb.Query", stale)


def test_oldest_first_holds_while_the_index_lags(
    dynamodb_backend: Backend, clock: FakeClock
) -> None:
    store, client, run = dynamodb_backend.store, dynamodb_backend.client, uuid4()
    store.register_waiter(run, "older", "review")
    clock.advance(seconds=1)
    store.register_waiter(run, "newer", "approve")
    clock.advance(seconds=1)
    # The older waiter now waits for "approve" too; the index still files it under "review".
    with index_shows_only(client, {"newer"}), record_requests(client) as requests:
        store.register_waiter(run, "older", "approve")
        first = store.deliver_signal(run, "approve", '"first"')
        second = store.deliver_signal(run, "approve", '"second"')
        third = store.deliver_signal(run, "approve", '"third"')
        missing = store.deliver_signal(run, "review", "{}")

    assert (first.status, first.step_key) == (SignalDeliveryStatus.DELIVERED, "older")
    assert (second.status, second.step_key) == (SignalDeliveryStatus.DELIVERED, "newer")
    assert (third.status, third.step_key) == (SignalDeliveryStatus.ALREADY_DELIVERED, "older")
    assert missing.status is SignalDeliveryStatus.NOT_FOUND
    # Decisions never read the index that lags.
    assert not any(r.params.get("IndexName") == SIGNAL_INDEX for r in requests)


def test_a_lagging_index_never_yields_a_false_expired_or_not_found(
    dynamodb_backend: Backend, clock: FakeClock
) -> None:
    store, client, run = dynamodb_backend.store, dynamodb_backend.client, uuid4()
    store.register_waiter(run, "old", "go", clock.now)
    clock.advance(seconds=1)
    # The index shows only the expired waiter, not the live one registered just now.
    with index_shows_only(client, {"old"}):
        store.register_waiter(run, "new", "go")
        store.register_waiter(run, "fresh", "other")
        result = store.deliver_signal(run, "go", "{}")
        other = store.deliver_signal(run, "other", "{}")
    assert (result.status, result.step_key) == (SignalDeliveryStatus.DELIVERED, "new")
    assert (other.status, other.step_key) == (SignalDeliveryStatus.DELIVERED, "fresh")


def test_listing_a_signal_reads_the_lagging_index_but_never_lists_a_waiter_under_a_wrong_name(
    dynamodb_backend: Backend, clock: FakeClock
) -> None:
    store, client, run = dynamodb_backend.store, dynamodb_backend.client, uuid4()
    for step_key in ("a", "b", "c"):
        store.register_waiter(run, step_key, "go")
        clock.advance(seconds=1)
    # The index has not caught up: it still lists "b" under "go", and not yet "d".
    with index_shows_only(client, {"a", "b", "c"}), record_requests(client) as requests:
        store.register_waiter(run, "b", "other")
        store.register_waiter(run, "d", "go")
        listed = store.list_waiters(run, signal_name="go")
        page = store.list_waiters_page(run, limit=1, signal_name="go")
        next_page = store.list_waiters_page(run, limit=5, after=page[0].position, signal_name="go")
        decided = store.deliver_signal(run, "go", "{}")

    assert [w.step_key for w in listed] == ["a", "c"]  # eventually consistent, as documented
    assert [w.step_key for w in page] == ["a"]
    assert [w.step_key for w in next_page] == ["c"]
    assert decided.step_key == "a"
    index_reads = [r for r in requests if r.params.get("IndexName") == SIGNAL_INDEX]
    assert len(index_reads) == 3 and all("ConsistentRead" not in r.params for r in index_reads)
    assert "BatchGetItem" in operations(requests)


# --- DynamoDB failing ----------------------------------------------------------------------


def every_operation(store: DynamoDBFlowSignalStore, run: UUID) -> list[Any]:
    return [
        lambda: store.register_waiter(run, "s", "go"),
        lambda: store.deliver_signal(run, "go", "{}"),
        lambda: store.deliver_signal(run, "go", "{}", idempotency_key="k"),
        lambda: store.get_waiter(run, "s"),
        lambda: store.remove_waiter(run, "s"),
        lambda: store.list_waiters(run),
    ]


def test_an_unreachable_endpoint_is_store_unavailable() -> None:
    client = dynamodb_local_client(
        "http://127.0.0.1:9",  # the discard port: nothing listens there
        connect_timeout=0.5,
        retries={"mode": "standard", "total_max_attempts": 2},
    )
    store = DynamoDBFlowSignalStore(TABLE_NAME, client=client)
    for operation in every_operation(store, uuid4()):
        with pytest.raises(StoreUnavailable, match="could not be reached"):
            operation()


def test_a_missing_table_is_a_configuration_error_not_unavailability(
    dynamodb_backend: Backend,
) -> None:
    store = DynamoDBFlowSignalStore("no-such-table", client=dynamodb_backend.client)
    for operation in every_operation(store, uuid4()):
        with pytest.raises(FlowSignalError, match="ResourceNotFoundException") as raised:
            operation()
        assert not isinstance(raised.value, StoreUnavailable)


class _Body:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


@contextmanager
def dynamodb_answers(client: Any, status: int, code: str) -> Iterator[list[str]]:
    """Every request gets this error answer instead of reaching DynamoDB; yields the attempts."""
    attempts: list[str] = []
    body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": code})

    def answer(request: Any, **_: Any) -> AWSResponse:
        attempts.append(request.headers["X-Amz-Target"].decode().split(".")[-1])
        headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": "test"}
        return AWSResponse(request.url, status, headers, _Body(body.encode()))

    client.meta.events.register_first("before-send.dynamodb", answer)
    try:
        yield attempts
    finally:
        client.meta.events.unregister("before-send.dynamodb", answer)


class FaultyStore(NamedTuple):
    client: Any
    store: DynamoDBFlowSignalStore
    run: UUID
    before: list[Any]  # the run's waiters before any fault


@pytest.fixture
def faulty_store(
    dynamodb_local_endpoint: str, dynamodb_local_table: tuple[Any, str], no_retry_backoff: None
) -> FaultyStore:
    """A store on DynamoDB Local with its own client (for fault hooks) and one waiter."""
    client = dynamodb_local_client(dynamodb_local_endpoint)
    store = DynamoDBFlowSignalStore(dynamodb_local_table[1], client=client)
    run = uuid4()
    store.register_waiter(run, "s", "go")
    return FaultyStore(client, store, run, store.list_waiters(run))


@pytest.mark.dynamodb_local
@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "ProvisionedThroughputExceededException"),
        (400, "ThrottlingException"),
        (500, "InternalServerError"),
        (503, "ServiceUnavailable"),
    ],
)
def test_throttling_and_server_errors_are_retried_then_store_unavailable(
    faulty_store: FaultyStore, status: int, code: str
) -> None:
    client, store, run, before = faulty_store
    for operation in every_operation(store, run):
        with dynamodb_answers(client, status, code) as attempts, pytest.raises(StoreUnavailable):
            operation()
        assert len(attempts) == 4, "botocore's standard mode makes four attempts at DynamoDB"

    assert store.list_waiters(run) == before


@pytest.mark.dynamodb_local
def test_a_delivery_whose_answer_was_lost_is_recognised_as_its_own(
    faulty_store: FaultyStore,
) -> None:
    """DynamoDB applies the write, the answer is lost, botocore sends it again: the repeat
    fails its condition, and the store still knows the delivery is this caller's."""
    client, store, run, _ = faulty_store
    session = URLLib3Session()
    lost: list[str] = []

    def apply_then_lose_the_answer(request: Any, **_: Any) -> None:
        target = request.headers["X-Amz-Target"].decode()
        if target.endswith("UpdateItem") and not lost:
            lost.append(session.send(request).content.decode())
            raise ReadTimeoutError(endpoint_url=request.url)

    client.meta.events.register_first("before-send.dynamodb", apply_then_lose_the_answer)
    try:
        result = store.deliver_signal(run, "go", '{"mine": true}')
    finally:
        client.meta.events.unregister("before-send.dynamodb", apply_then_lose_the_answer)

    assert lost and "ConditionalCheckFailed" not in lost[0]  # the first attempt was applied
    assert (result.status, result.step_key, result.replayed) == (
        SignalDeliveryStatus.DELIVERED,
        "s",
        False,
    )
    waiter = store.get_waiter(run, "s")
    assert waiter is not None and waiter.payload_json == '{"mine": true}'
    assert waiter.delivered_at == result.delivered_at


def test_the_default_client_uses_standard_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:9")
    store = DynamoDBFlowSignalStore(TABLE_NAME)
    config: Config = store._client.meta.config
    assert config.retries["mode"] == "standard"
    # One attempt takes at most 4 s: a retry still fits in the functions' 10 s.
    assert config.connect_timeout + config.read_timeout <= 4
    assert store._client.meta.endpoint_url == "http://127.0.0.1:9"


def test_a_silent_dynamodb_is_unavailable_before_the_time_runs_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with silent_endpoint() as endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", endpoint)
        store = DynamoDBFlowSignalStore(TABLE_NAME, client=default_client())
        budget = 7.0  # two attempts of at most 4 s cannot both fit
        for operation in every_operation(store, uuid4())[:2]:
            started = time.monotonic()
            with answer_within(budget), pytest.raises(StoreUnavailable, match="no time left"):
                operation()
            assert time.monotonic() - started < budget


@pytest.mark.dynamodb_local
@pytest.mark.parametrize(
    "error",
    [
        EndpointConnectionError(endpoint_url="http://dynamodb"),
        ConnectionClosedError(endpoint_url="http://dynamodb"),
        ConnectTimeoutError(endpoint_url="http://dynamodb"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_injected_connection_errors_are_retried_then_store_unavailable(
    faulty_store: FaultyStore, error: Exception
) -> None:
    client, store, run, before = faulty_store
    attempts: list[str] = []

    def fail(request: Any, **_: Any) -> None:
        attempts.append(request.headers["X-Amz-Target"].decode())
        raise error

    client.meta.events.register_first("before-send.dynamodb", fail)
    for operation in every_operation(store, run):
        attempts.clear()
        with pytest.raises(StoreUnavailable):
            operation()
        assert len(attempts) == 4, "botocore's standard mode makes four attempts at DynamoDB"
    client.meta.events.unregister("before-send.dynamodb", fail)

    assert store.list_waiters(run) == before
