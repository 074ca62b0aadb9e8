"""The figures users choose a store on, all measured in this run: DynamoDB requests and
consumed capacity per operation (DynamoDB Local), each decision's cost in an empty and in a
crowded run (infra/capacity.py), the cost of an approval cycle at on-demand prices, delivery
throughput from 1, 4 and 16 threads, deliveries under contention (64 at once on one run: the
answers, their latency, their requests), and the functions' cold start as Lambda pays it
against a bare boto3 handler (infra/cold_start.py).

    make bench      # or: python infra/bench.py [--endpoint http://127.0.0.1:8000]

Each operation runs against a fresh run with one waiter per signal name (docs/design.md,
Requests and capacity) and asks DynamoDB for ReturnConsumedCapacity=INDEXES. Every figure
printed comes from this run. DynamoDB Local reports capacity as DynamoDB bills it for
successful requests; it reports none for a conditional write that failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import boto3
from botocore.config import Config

import capacity
import cold_start
import dynamodb_local
from capacity import SMALL_PAYLOAD, Budget, Cost
from cold_start import percentile
from flowsignals import DynamoDBFlowSignalStore, SignalFailure, StoreUnavailable
from flowsignals.testing import (
    RecordedRequest,
    consumed_capacity,
    create_waiter_table,
    record_requests,
)

KB_PAYLOAD = json.dumps({"approved": True, "note": "x" * 990})  # 1,016 bytes
# docs/design.md, Requests and capacity: the decisions' budgets, and a few more.
BUDGETS = capacity.BUDGETS | {
    "remove": Budget(requests=1),
    "list of 10": Budget(requests=1),
}


def measure(store: DynamoDBFlowSignalStore, client: Any) -> list[tuple[str, list[RecordedRequest]]]:
    rows: list[tuple[str, list[RecordedRequest]]] = []

    def row(name: str, operation: Callable[[], object]) -> None:
        with record_requests(client, consumed_capacity=True) as requests:
            operation()
        rows.append((name, requests))

    run = uuid4()
    row(
        "register (new, nothing buffered)",
        lambda: store.register_waiter(run, "approve-step", "approve"),
    )
    row("re-register", lambda: store.register_waiter(run, "approve-step", "approve"))
    row(
        "register (new, deadline, token)",
        lambda: store.register_waiter(
            run,
            "review-step",
            "review",
            datetime.now(UTC) + timedelta(hours=1),
            task_token="t" * 700,
        ),
    )
    row("deliver (hit)", lambda: store.deliver_signal(run, "approve", SMALL_PAYLOAD))
    row("deliver (already delivered)", lambda: store.deliver_signal(run, "approve", SMALL_PAYLOAD))
    row("deliver (miss)", lambda: store.deliver_signal(run, "absent", SMALL_PAYLOAD))
    row("deliver (hit, 1 KB payload)", lambda: store.deliver_signal(run, "review", KB_PAYLOAD))

    keyed = uuid4()
    store.register_waiter(keyed, "approve-step", "approve")
    store.register_waiter(keyed, "reject-step", "reject")
    row(
        "deliver (hit, idempotency key)",
        lambda: store.deliver_signal(keyed, "approve", SMALL_PAYLOAD, idempotency_key="req-1"),
    )
    row(
        "deliver (replay)",
        lambda: store.deliver_signal(keyed, "approve", SMALL_PAYLOAD, idempotency_key="req-1"),
    )
    row(
        "deliver (hit, failure)",
        lambda: store.deliver_signal(keyed, "reject", failure=SignalFailure(error="Rejected")),
    )
    early = uuid4()
    row(
        "deliver (nobody waits: buffered)",
        lambda: store.deliver_signal(
            early, "approve", SMALL_PAYLOAD, buffer_for=timedelta(hours=1)
        ),
    )
    row(
        "register (receives the buffered)",
        lambda: store.register_waiter(early, "approve-step", "approve"),
    )
    row("get", lambda: store.get_waiter(run, "approve-step"))
    row("remove", lambda: store.remove_waiter(run, "approve-step"))

    listed = uuid4()
    for n in range(10):
        store.register_waiter(listed, f"step-{n}", f"signal-{n}")
    row("list of 10", lambda: store.list_waiters(listed))
    return rows


# On-demand prices, us-east-1 (AWS price list since the November 2024 reduction), USD per
# million request units. Only the units come from the run; the prices are these constants.
PRICE_PER_MILLION_WRITE_UNITS = 0.625
PRICE_PER_MILLION_READ_UNITS = 0.125
APPROVAL_CYCLE = ("register (new, nothing buffered)", "deliver (hit)", "get")
THROUGHPUT_DELIVERIES = 400  # per thread count: bounded, on loopback only


def cycle_cost(rows: list[tuple[str, list[RecordedRequest]]]) -> str:
    measured = dict(rows)
    read = write = 0.0
    for name in APPROVAL_CYCLE:
        r, w = consumed_capacity(measured[name])
        read, write = read + r, write + w
    dollars = write * PRICE_PER_MILLION_WRITE_UNITS + read * PRICE_PER_MILLION_READ_UNITS
    return (
        f"approval cycle ({' + '.join(APPROVAL_CYCLE)}): {write:g} write + {read:g} read units"
        f" = ${dollars:.2f} per million cycles (DynamoDB on-demand at"
        f" ${PRICE_PER_MILLION_WRITE_UNITS}/M writes, ${PRICE_PER_MILLION_READ_UNITS}/M reads;"
        " Lambda and API Gateway not included)"
    )


def throughput(store: DynamoDBFlowSignalStore, threads: int) -> float:
    """Deliveries per second from ``threads`` threads, each waiter on its own run."""
    runs = [uuid4() for _ in range(THROUGHPUT_DELIVERIES)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda run: store.register_waiter(run, "approval", "approve"), runs))
    with ThreadPoolExecutor(max_workers=threads) as pool:
        start = time.perf_counter()
        results = list(
            pool.map(lambda run: store.deliver_signal(run, "approve", SMALL_PAYLOAD), runs)
        )
        elapsed = time.perf_counter() - start
    assert all(result.status == "Delivered" for result in results)
    return len(runs) / elapsed


CONTENTION_THREADS = 64  # deliveries released together by a barrier, on one run
CONTENTION_ROUNDS = 3  # each on a fresh run; the figures are over all rounds' deliveries


@dataclass
class Contention:
    """What the deliveries of one contention scenario answered, over every round."""

    name: str
    answers: Counter[str] = field(default_factory=Counter)  # status, or "unavailable"
    seconds: list[float] = field(default_factory=list)  # each delivery's latency
    calls: list[int] = field(default_factory=list)  # each delivery's DynamoDB calls
    requests: list[RecordedRequest] = field(default_factory=list)

    @property
    def deliveries(self) -> int:
        return len(self.seconds)


def contend(
    store: DynamoDBFlowSignalStore, client: Any, scenario: Contention, waiters: int
) -> None:
    """One round: ``waiters`` waiters of one name on a fresh run, then CONTENTION_THREADS
    deliveries of that name released together; adds their answers to ``scenario``."""
    run = uuid4()
    for n in range(waiters):
        store.register_waiter(run, f"step-{n:02d}", "approve")
    start = threading.Barrier(CONTENTION_THREADS)
    counted = threading.local()  # the DynamoDB calls of the delivery on this thread

    def count_call(**_: Any) -> None:
        counted.calls += 1

    def deliver(n: int) -> tuple[str, float, int]:
        counted.calls = 0
        start.wait()
        began = time.perf_counter()
        try:
            result = store.deliver_signal(run, "approve", json.dumps({"delivery": n}))
            answer = str(result.status)
        except StoreUnavailable:
            answer = "unavailable"
        return answer, time.perf_counter() - began, counted.calls

    events = client.meta.events
    events.register("provide-client-params.dynamodb", count_call)
    try:
        with (
            record_requests(client, consumed_capacity=True) as requests,
            ThreadPoolExecutor(max_workers=CONTENTION_THREADS) as pool,
        ):
            outcomes = list(pool.map(deliver, range(CONTENTION_THREADS)))
    finally:
        events.unregister("provide-client-params.dynamodb", count_call)
    for answer, seconds, calls in outcomes:
        scenario.answers[answer] += 1
        scenario.seconds.append(seconds)
        scenario.calls.append(calls)
    scenario.requests.extend(requests)


def contention(store: DynamoDBFlowSignalStore, client: Any) -> list[Contention]:
    crowd = CONTENTION_THREADS
    scenarios = [
        (Contention(f"{crowd} waiters, {crowd} deliveries"), crowd),
        (Contention(f"1 waiter, {crowd} deliveries"), 1),
    ]
    for scenario, waiters in scenarios:
        for _ in range(CONTENTION_ROUNDS):
            contend(store, client, scenario, waiters)
    return [scenario for scenario, _ in scenarios]


def contention_report(scenarios: list[Contention]) -> str:
    header = (
        f"{'scenario':28} {'Delivered':>9} {'Already':>7} {'unavail.':>8}"
        f" {'p50 ms':>7} {'p99 ms':>7} {'req/deliv':>9} {'max':>4} {'RCU/d':>6} {'WCU/d':>6}"
    )
    lines = [header, "-" * len(header)]
    for s in scenarios:
        n = s.deliveries
        read, write = consumed_capacity(s.requests)
        operations = Counter(request.operation for request in s.requests)
        wins = s.answers["Delivered"]
        failed_writes = operations["UpdateItem"] - wins
        lines.append(
            f"{s.name:28} {wins:>9} {s.answers['AlreadyDelivered']:>7}"
            f" {s.answers['unavailable']:>8}"
            f" {percentile(s.seconds, 50) * 1000:>7.1f} {percentile(s.seconds, 99) * 1000:>7.1f}"
            f" {len(s.requests) / n:>9.2f} {max(s.calls):>4} {read / n:>6.2f} {write / n:>6.2f}"
        )
        others = set(s.answers) - {"Delivered", "AlreadyDelivered", "unavailable"}
        per_delivery = " + ".join(f"{count / n:.2f} {op}" for op, count in operations.items())
        lines.append(
            f"{'':28} per delivery: {per_delivery}; {failed_writes / n:.2f} failed conditional"
            " writes" + (f"; other answers: {sorted(others)}" if others else "")
        )
    return "\n".join(lines)


def report(rows: list[tuple[str, list[RecordedRequest]]]) -> str:
    header = f"{'operation':34} {'requests':>8} {'RCU':>6} {'WCU':>6}   budget (req / RCU / WCU)"
    lines = [header, "-" * len(header)]
    for name, requests in rows:
        cost = Cost.of(requests)
        budget = BUDGETS.get(name)
        verdict = "" if budget is None else f"{budget}  {'ok' if budget.holds(cost) else 'OVER'}"
        lines.append(f"{name:34} {cost.requests:>8} {cost.read:>6g} {cost.write:>6g}   {verdict}")
        lines.append(f"{'':34} {cost.calls}")
    return "\n".join(lines)


def bench_client(endpoint: str, connections: int) -> Any:
    return boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        config=Config(retries={"mode": "standard"}, max_pool_connections=connections),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", help="a running DynamoDB Local (default: start one)")
    arguments = parser.parse_args()
    with contextlib.ExitStack() as stack:
        endpoint = arguments.endpoint or stack.enter_context(dynamodb_local.running())
        client = bench_client(endpoint, connections=16)
        table = f"flowsignals-bench-{uuid4().hex[:8]}"
        create_waiter_table(client, table)
        store = DynamoDBFlowSignalStore(table, client=client)
        rows = measure(store, client)
        empty, crowded = capacity.empty_and_crowded(store, client)
        rates = {threads: throughput(store, threads) for threads in (1, 4, 16)}
        # A client of its own, with a connection for each contending thread.
        crowd_client = bench_client(endpoint, connections=CONTENTION_THREADS)
        crowd = DynamoDBFlowSignalStore(table, client=crowd_client)
        contended = contention(crowd, crowd_client)
        cold = cold_start.report(endpoint, table, store)
    print(f"flowsignals benchmark — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.system()},"
        f" Python {platform.python_version()}; DynamoDB Local in memory on loopback"
    )
    print()
    print(report(rows))
    print()
    print(
        f"each decision in an empty run and in a crowded one ({capacity.CROWD_WAITERS} waiters"
        f" and {capacity.CROWD_DELIVERED} delivered 100 KB payloads of other names), as"
        " requests / RCU / WCU:"
    )
    print(capacity.report(empty, crowded))
    print()
    print(cycle_cost(rows))
    print()
    print(f"delivery throughput ({THROUGHPUT_DELIVERIES} deliveries, distinct runs):")
    for threads, rate in rates.items():
        print(f"  {threads:2} thread{'s' if threads > 1 else ' '}  {rate:7.0f} deliveries/s")
    print()
    print(
        f"contention ({CONTENTION_THREADS} deliveries of one name on one run, released together;"
        f" {CONTENTION_ROUNDS} rounds, figures over all their deliveries):"
    )
    print(contention_report(contended))
    print(
        "  req/deliv counts calls (botocore retries are not calls); max is one delivery's most."
        " RCU/WCU as DynamoDB Local reports them: none for a failed conditional write, which"
        " DynamoDB bills (1 WCU per KB of the item)."
    )
    print()
    print(cold)


if __name__ == "__main__":
    main()
