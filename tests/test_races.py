"""Exactly once under concurrency: many threads delivering at once, on the in-memory store and on
DynamoDB Local (a real server; moto is not used for races)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar
from uuid import uuid4

import pytest

from conftest import Backend, FakeClock, make_backend
from flowsignals import SignalDeliveryStatus

THREADS = 24
TRIALS = 5
T = TypeVar("T")


@pytest.fixture(params=["memory", pytest.param("dynamodb-local", marks=pytest.mark.dynamodb_local)])
def race_backend(request: pytest.FixtureRequest, clock: FakeClock) -> Backend:
    return make_backend(request.param, request, clock)


def all_at_once(calls: list[Callable[[], T]]) -> list[T]:
    """Run the calls on their own threads, released together by a barrier."""
    start = threading.Barrier(len(calls))

    def run(call: Callable[[], T]) -> T:
        start.wait()
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


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
