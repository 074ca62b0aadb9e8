"""The figures users choose a store on, all measured in this run: DynamoDB requests and
consumed capacity per operation (DynamoDB Local), the cost of an approval cycle at on-demand
prices, delivery throughput from 1, 4 and 16 threads, and the handlers' cold import time
against bare ``import boto3``.

    make bench      # or: python infra/bench.py [--endpoint http://127.0.0.1:8000]

Each operation runs against a fresh run with one waiter per signal name (the shape of
SPEC section 2's budget) and asks DynamoDB for ReturnConsumedCapacity=INDEXES. Every
figure printed comes from this run. DynamoDB Local reports capacity as DynamoDB bills it
for successful requests; it reports none for a conditional write that failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import boto3
from botocore.config import Config

import dynamodb_local
import import_time
from flowsignals import DynamoDBFlowSignalStore
from flowsignals.testing import RecordedRequest, create_waiter_table, record_requests

READS = {"Query", "GetItem", "Scan", "BatchGetItem"}
SMALL_PAYLOAD = json.dumps({"approved": True, "by": "ana@example.com"})
KB_PAYLOAD = json.dumps({"approved": True, "note": "x" * 990})  # 1,016 bytes
# SPEC section 2: (requests at most, RCU at most, WCU at most); None where it sets none.
BUDGET: dict[str, tuple[int | None, float | None, float | None]] = {
    "register (new)": (1, None, 2),
    "deliver (hit)": (2, 0.5, 1),
    "deliver (miss)": (2, None, None),
    "get": (1, 1, None),
    "remove": (1, None, None),
    "list of 10": (1, None, None),
}


def capacity(requests: list[RecordedRequest]) -> tuple[float, float]:
    """(read units, write units), table and indexes together."""
    read = write = 0.0
    for request in requests:
        units = (request.consumed_capacity or {}).get("CapacityUnits", 0.0)
        if request.operation in READS:
            read += units
        else:
            write += units
    return read, write


def measure(store: DynamoDBFlowSignalStore, client: Any) -> list[tuple[str, list[RecordedRequest]]]:
    rows: list[tuple[str, list[RecordedRequest]]] = []

    def row(name: str, operation: Callable[[], object]) -> None:
        with record_requests(client, consumed_capacity=True) as requests:
            operation()
        rows.append((name, requests))

    run = uuid4()
    row("register (new)", lambda: store.register_waiter(run, "approve-step", "approve"))
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
    row(
        "deliver (hit, idempotency key)",
        lambda: store.deliver_signal(keyed, "approve", SMALL_PAYLOAD, idempotency_key="req-1"),
    )
    row(
        "deliver (replay)",
        lambda: store.deliver_signal(keyed, "approve", SMALL_PAYLOAD, idempotency_key="req-1"),
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
APPROVAL_CYCLE = ("register (new)", "deliver (hit)", "get")
THROUGHPUT_DELIVERIES = 400  # per thread count: bounded, on loopback only


def cycle_cost(rows: list[tuple[str, list[RecordedRequest]]]) -> str:
    measured = dict(rows)
    read = write = 0.0
    for name in APPROVAL_CYCLE:
        r, w = capacity(measured[name])
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


def limit(value: float | None) -> str:
    return "-" if value is None else f"≤ {value:g}"


def report(rows: list[tuple[str, list[RecordedRequest]]]) -> str:
    header = f"{'operation':34} {'requests':>8} {'RCU':>6} {'WCU':>6}   budget (req / RCU / WCU)"
    lines = [header, "-" * len(header)]
    for name, requests in rows:
        read, write = capacity(requests)
        calls = " + ".join(request.operation for request in requests)
        budget = BUDGET.get(name)
        verdict = ""
        if budget is not None:
            max_requests, max_read, max_write = budget
            fits = (
                len(requests) <= (max_requests or len(requests))
                and (max_read is None or read <= max_read)
                and (max_write is None or write <= max_write)
            )
            verdict = f"{limit(max_requests)} / {limit(max_read)} / {limit(max_write)}"
            verdict += "  ok" if fits else "  OVER"
        lines.append(f"{name:34} {len(requests):>8} {read:>6g} {write:>6g}   {verdict}")
        lines.append(f"{'':34} {calls}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", help="a running DynamoDB Local (default: start one)")
    arguments = parser.parse_args()
    with contextlib.ExitStack() as stack:
        endpoint = arguments.endpoint or stack.enter_context(dynamodb_local.running())
        client = boto3.client(
            "dynamodb",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
            config=Config(retries={"mode": "standard"}, max_pool_connections=16),
        )
        table = f"flowsignals-bench-{uuid4().hex[:8]}"
        create_waiter_table(client, table)
        store = DynamoDBFlowSignalStore(table, client=client)
        rows = measure(store, client)
        rates = {threads: throughput(store, threads) for threads in (1, 4, 16)}
    print(f"flowsignals benchmark — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.system()},"
        f" Python {platform.python_version()}; DynamoDB Local in memory on loopback"
    )
    print()
    print(report(rows))
    print()
    print(cycle_cost(rows))
    print()
    print(f"delivery throughput ({THROUGHPUT_DELIVERIES} deliveries, distinct runs):")
    for threads, rate in rates.items():
        print(f"  {threads:2} thread{'s' if threads > 1 else ' '}  {rate:7.0f} deliveries/s")
    print()
    print(import_time.report())


if __name__ == "__main__":
    main()
