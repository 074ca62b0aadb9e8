"""Exactly once under concurrency: many threads delivering at once, on the in-memory store and on
DynamoDB Local (a real server; moto is not used for races)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar
from uuid import uuid4

import pytest
from aws_lambda_powertools import Metrics

from conftest import Backend, FakeClock, dynamodb_local_client, make_backend
from flowsignals import (
    DynamoDBFlowSignalStore,
    NotAllowedToDecide,
    SignalDeliveryResult,
    SignalDeliveryStatus,
)
from flowsignals.lambdas.approvals.keys import FixedLinkKeys, LinkKey
from flowsignals.lambdas.approvals.schemas import MintLinksBody
from flowsignals.lambdas.approvals.service import ApprovalService, Outcome
from flowsignals.lambdas.service import SignalService

THREADS = 24
TRIALS = 5
CROWD = 64  # the most concurrent deliveries of one test
T = TypeVar("T")


@pytest.fixture(params=["memory", pytest.param("dynamodb-local", marks=pytest.mark.dynamodb_local)])
def race_backend(request: pytest.FixtureRequest, clock: FakeClock) -> Backend:
    return make_backend(request.param, request, clock)


@pytest.fixture(scope="module")
def crowd_client(dynamodb_local_endpoint: str) -> Any:
    """A DynamoDB Local client with a connection for each of CROWD threads (the session's
    client has 32: more threads would queue for a connection instead of racing)."""
    return dynamodb_local_client(dynamodb_local_endpoint, max_pool_connections=CROWD)


@pytest.fixture(params=["memory", pytest.param("dynamodb-local", marks=pytest.mark.dynamodb_local)])
def crowd_backend(request: pytest.FixtureRequest, clock: FakeClock) -> Backend:
    """Like race_backend, with a DynamoDB Local store whose client serves CROWD threads."""
    if request.param == "memory":
        return make_backend("memory", request, clock)
    _, table = request.getfixturevalue("dynamodb_local_table")
    client = request.getfixturevalue("crowd_client")
    store = DynamoDBFlowSignalStore(table, client=client, clock=clock)
    return Backend(request.param, store, client, table)


def all_at_once(calls: list[Callable[[], T]]) -> list[T]:
    """Run the calls on their own threads, released together by a barrier."""
    start = threading.Barrier(len(calls))

    def run(call: Callable[[], T]) -> T:
        start.wait()
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def deliveries_at_once(
    deliver: Callable[[int], SignalDeliveryResult], count: int
) -> list[SignalDeliveryResult]:
    """``deliver(0)`` .. ``deliver(count - 1)`` released together; fails naming every
    exception raised (StoreUnavailable above all), not only the first."""

    def caught(n: int) -> SignalDeliveryResult | Exception:
        try:
            return deliver(n)
        except Exception as error:
            return error

    outcomes = all_at_once([partial(caught, n) for n in range(count)])
    raised = [f"{n}: {o!r}" for n, o in enumerate(outcomes) if isinstance(o, Exception)]
    assert not raised, f"{len(raised)} of {count} deliveries raised: {raised}"
    return [o for o in outcomes if isinstance(o, SignalDeliveryResult)]


@pytest.mark.parametrize("trial", range(TRIALS))
def test_one_waiter_many_deliveries_exactly_one_wins(race_backend: Backend, trial: int) -> None:
    store, run = race_backend.store, uuid4()
    store.register_waiter(run, "approve-step", "approve")

    results = all_at_once(
        [
            (lambda n=n: store.deliver_signal(run, "approve", f'{{"click": {n}}}'))
            for n in range(THREADS)
        ]
    )

    winners = [n for n, r in enumerate(results) if r.status is SignalDeliveryStatus.DELIVERED]
    assert len(winners) == 1
    losers = [r for r in results if r.status is not SignalDeliveryStatus.DELIVERED]
    assert {r.status for r in losers} == {SignalDeliveryStatus.ALREADY_DELIVERED}
    winner = results[winners[0]]
    assert all(r.delivered_at == winner.delivered_at for r in losers)
    stored = store.get_waiter(run, "approve-step")
    assert stored is not None and stored.payload_json == f'{{"click": {winners[0]}}}'


def test_two_waiters_many_deliveries_each_gets_exactly_one(race_backend: Backend) -> None:
    store, run = race_backend.store, uuid4()
    store.register_waiter(run, "a", "approve")
    store.register_waiter(run, "b", "approve")

    results = all_at_once(
        [(lambda n=n: store.deliver_signal(run, "approve", str(n))) for n in range(THREADS)]
    )

    statuses = Counter(r.status for r in results)
    assert statuses == {
        SignalDeliveryStatus.DELIVERED: 2,
        SignalDeliveryStatus.ALREADY_DELIVERED: THREADS - 2,
    }
    assert sorted(r.step_key for r in results if r.status is SignalDeliveryStatus.DELIVERED) == [
        "a",
        "b",
    ]
    payloads = {w.step_key: w.payload_json for w in store.list_waiters(run)}
    winners = {
        r.step_key: str(n)
        for n, r in enumerate(results)
        if r.status is SignalDeliveryStatus.DELIVERED
    }
    assert payloads == winners


def test_retries_with_one_key_deliver_once_and_replay_the_rest(race_backend: Backend) -> None:
    store, run = race_backend.store, uuid4()
    store.register_waiter(run, "a", "approve")
    store.register_waiter(run, "b", "approve")

    results = all_at_once(
        [
            (lambda: store.deliver_signal(run, "approve", '"once"', idempotency_key="click-1"))
            for _ in range(THREADS)
        ]
    )

    assert {r.status for r in results} == {SignalDeliveryStatus.DELIVERED}
    assert sum(not r.replayed for r in results) == 1
    assert {(r.step_key, r.delivered_at) for r in results} == {("a", results[0].delivered_at)}
    b = store.get_waiter(run, "b")
    assert b is not None and b.delivered_at is None


def test_register_racing_deliver_never_loses_or_doubles_a_delivery(race_backend: Backend) -> None:
    store, run = race_backend.store, uuid4()
    store.register_waiter(run, "s", "go")
    deliveries = [(lambda n=n: store.deliver_signal(run, "go", str(n))) for n in range(12)]
    registrations = [
        (lambda n=n: store.register_waiter(run, "s", " go ", task_token=f"token-{n}"))
        for n in range(12)
    ]

    results = all_at_once([*deliveries, *registrations])

    delivered = [
        n for n, r in enumerate(results[:12]) if r.status is SignalDeliveryStatus.DELIVERED
    ]
    assert len(delivered) == 1
    winner = results[delivered[0]]
    stored = store.get_waiter(run, "s")
    assert stored is not None
    assert (stored.delivered_at, stored.payload_json) == (winner.delivered_at, str(delivered[0]))
    for waiter in results[12:]:  # each registration saw the waiter before or after the delivery
        assert waiter.delivered_at in (None, winner.delivered_at)
        assert waiter.payload_json in (None, str(delivered[0]))


def test_remove_racing_deliver_never_resurrects_or_doubles(race_backend: Backend) -> None:
    store, run = race_backend.store, uuid4()
    store.register_waiter(run, "s", "go")

    results = all_at_once(
        [*((lambda n=n: store.deliver_signal(run, "go", str(n))) for n in range(16))]
        + [lambda: store.remove_waiter(run, "s") for _ in range(4)]
    )

    statuses = Counter(r.status for r in results[:16])
    assert statuses[SignalDeliveryStatus.DELIVERED] <= 1
    assert set(statuses) <= {
        SignalDeliveryStatus.DELIVERED,
        SignalDeliveryStatus.ALREADY_DELIVERED,
        SignalDeliveryStatus.NOT_FOUND,
    }
    assert store.get_waiter(run, "s") is None, "a delivery must never recreate a removed waiter"


def test_a_delivered_payload_never_changes_while_deliveries_race(race_backend: Backend) -> None:
    store, run = race_backend.store, uuid4()
    store.register_waiter(run, "s", "go")
    seen: list[tuple[object, object]] = []

    def watch() -> None:
        for _ in range(40):
            waiter = store.get_waiter(run, "s")
            assert waiter is not None
            seen.append((waiter.delivered_at, waiter.payload_json))

    all_at_once(
        [watch, watch, *((lambda n=n: store.deliver_signal(run, "go", str(n))) for n in range(14))]
    )

    delivered_states = {state for state in seen if state[0] is not None}
    assert len(delivered_states) <= 1
    final = store.get_waiter(run, "s")
    assert final is not None
    assert delivered_states <= {(final.delivered_at, final.payload_json)}


@pytest.mark.parametrize("n", [8, 32, CROWD])
def test_contention_is_not_unavailability(crowd_backend: Backend, clock: FakeClock, n: int) -> None:
    """N waiters of one name, N deliveries at once: every delivery lands, one per waiter.
    A delivery that loses a waiter to another must try the next, not answer 503."""
    store, run = crowd_backend.store, uuid4()
    steps = [f"step-{i:02d}" for i in range(n)]
    for step in steps:
        store.register_waiter(run, step, "approve")
        clock.advance(milliseconds=1)  # distinct, increasing created_at

    results = deliveries_at_once(
        lambda k: store.deliver_signal(run, "approve", f'{{"delivery": {k}}}'), n
    )

    assert Counter(r.status for r in results) == {SignalDeliveryStatus.DELIVERED: n}
    assert not any(r.replayed for r in results)
    answered = Counter(r.step_key for r in results)
    assert set(answered) == set(steps)
    assert set(answered.values()) == {1}, "each waiter is delivered exactly once"
    stored = {w.step_key: w for w in store.list_waiters(run)}
    for k, result in enumerate(results):
        assert result.step_key is not None
        waiter = stored[result.step_key]
        assert (waiter.delivered_at, waiter.payload_json) == (
            result.delivered_at,
            f'{{"delivery": {k}}}',
        )


def test_a_crowd_on_one_waiter_gets_one_delivery_and_no_unavailability(
    crowd_backend: Backend,
) -> None:
    store, run = crowd_backend.store, uuid4()
    store.register_waiter(run, "approve-step", "approve")

    results = deliveries_at_once(
        lambda k: store.deliver_signal(run, "approve", f'{{"delivery": {k}}}'), CROWD
    )

    assert Counter(r.status for r in results) == {
        SignalDeliveryStatus.DELIVERED: 1,
        SignalDeliveryStatus.ALREADY_DELIVERED: CROWD - 1,
    }
    (winner,) = (k for k, r in enumerate(results) if r.status is SignalDeliveryStatus.DELIVERED)
    assert {(r.step_key, r.delivered_at) for r in results} == {
        ("approve-step", results[winner].delivered_at)
    }
    stored = store.get_waiter(run, "approve-step")
    assert stored is not None and stored.payload_json == f'{{"delivery": {winner}}}'


def test_ten_clicks_on_approve_and_reject_links_decide_once(
    race_backend: Backend, clock: FakeClock
) -> None:
    """Two people, five clicks each, on the two links of one approval: one decision."""
    store: Any = race_backend.store
    metrics = Metrics(namespace="FlowSignalsTest")
    key = LinkKey(keyId="race", key="r" * 40)
    approvals = ApprovalService(
        SignalService(store, metrics), store, store, FixedLinkKeys(key), clock
    )
    for _ in range(TRIALS):
        run = f"run-{uuid4()}"
        store.register_waiter(run, "approval", "approve")
        urls = approvals.mint(run, "approve", MintLinksBody(), "https://x")["links"]
        tokens = [url.rpartition("/")[2] for url in urls.values()]
        clicks = [partial(approvals.decide, tokens[i % 2]) for i in range(10)]
        outcomes = all_at_once(clicks)
        fresh = [o for o in outcomes if o.outcome is Outcome.DONE and not o.replayed]
        assert len(fresh) == 1, Counter((o.action, o.outcome, o.replayed) for o in outcomes)
        winner = fresh[0].action
        for outcome in outcomes:
            expected = Outcome.DONE if outcome.action == winner else Outcome.DECIDED
            assert outcome.outcome is expected
        delivered = store.get_waiter(run, "approval")
        assert delivered.idempotency_key == fresh[0].link.idempotency_key


# --- who may decide ------------------------------------------------------------------------


@pytest.mark.parametrize("trial", range(TRIALS))
def test_twenty_deciders_at_once_on_a_quorum_of_three_complete_it_once(
    crowd_backend: Backend, trial: int
) -> None:
    store, run = crowd_backend.store, uuid4()
    deciders = [f"sub:decider-{n:02d}" for n in range(20)]
    store.register_waiter(run, "payment", "approve", deciders=deciders, quorum=3)

    results = deliveries_at_once(
        lambda n: store.deliver_signal(
            run, "approve", f'{{"by": {n}}}', caller_identities=[deciders[n]]
        ),
        20,
    )

    statuses = Counter(result.status for result in results)
    assert statuses == {
        SignalDeliveryStatus.PENDING: 2,
        SignalDeliveryStatus.DELIVERED: 1,
        SignalDeliveryStatus.ALREADY_DELIVERED: 17,
    }, statuses
    waiter = store.get_waiter(run, "payment")
    assert waiter is not None and waiter.is_delivered
    # No approval was lost: the two told "pending" and the one told "delivered" are the three
    # recorded, and the payload is the completing one's.
    counted = {
        deciders[n]
        for n, result in enumerate(results)
        if result.status in (SignalDeliveryStatus.PENDING, SignalDeliveryStatus.DELIVERED)
    }
    assert waiter.approved_by == counted and len(waiter.approvals) == 3
    (completing,) = [n for n, r in enumerate(results) if r.status is SignalDeliveryStatus.DELIVERED]
    assert waiter.payload_json == f'{{"by": {completing}}}'
    pending_counts = sorted(
        r.approvals or 0 for r in results if r.status is SignalDeliveryStatus.PENDING
    )
    assert pending_counts == [1, 2]


@pytest.mark.dynamodb_local
def test_a_register_that_changes_the_deciders_between_the_read_and_the_write_is_not_slipped_past(
    dynamodb_local_table: tuple[Any, str], clock: FakeClock
) -> None:
    """Ana's delivery reads the waiter while she may decide it; before its write lands, a
    register takes her off the list. The write's condition holds the check: refused."""
    client, table = dynamodb_local_table
    store = DynamoDBFlowSignalStore(table, client=client, clock=clock)
    other = DynamoDBFlowSignalStore(table, client=dynamodb_local_client(client.meta.endpoint_url))
    run = str(uuid4())
    store.register_waiter(run, "payment", "approve", deciders=["email:ana@example.com"])

    def re_register_first(**_: Any) -> None:
        client.meta.events.unregister("before-call.dynamodb.UpdateItem", re_register_first)
        other.register_waiter(run, "payment", "approve", deciders=["email:bob@example.com"])

    client.meta.events.register("before-call.dynamodb.UpdateItem", re_register_first)
    try:
        with pytest.raises(NotAllowedToDecide):
            store.deliver_signal(run, "approve", "{}", caller_identities=["email:ana@example.com"])
    finally:
        client.meta.events.unregister("before-call.dynamodb.UpdateItem", re_register_first)
    waiter = store.get_waiter(run, "payment")
    assert waiter is not None and not waiter.is_delivered
    assert waiter.deciders == ("email:bob@example.com",)
