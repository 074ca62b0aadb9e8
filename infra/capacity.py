"""What each decision costs in an empty run and in a crowded one, measured on DynamoDB with
ReturnConsumedCapacity=INDEXES: the figures behind "cost does not grow with the run"
(docs/design.md). ``make bench`` prints them beside the budgets; tests/test_cost.py holds
every row to its budget, and the crowded run to the empty run's figures.

The crowd is the other signals of a busy run: 1,000 waiters of other names, and 300 waiters
of other names delivered with payloads of 100 KB (30 MB). A decision must not read them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from aws_lambda_powertools import Metrics

from flowsignals import DynamoDBFlowSignalStore, FlowSignalStore
from flowsignals.core.store import system_clock
from flowsignals.lambdas.approvals.keys import FixedLinkKeys, LinkKey
from flowsignals.lambdas.approvals.schemas import MintLinksBody
from flowsignals.lambdas.approvals.service import ApprovalService
from flowsignals.lambdas.service import SignalService
from flowsignals.testing import RecordedRequest, consumed_capacity, record_requests

CROWD_WAITERS = 1_000
CROWD_DELIVERED = 300
CROWD_PAYLOAD = json.dumps({"document": "x" * 100_000})  # 100 KB
SMALL_PAYLOAD = json.dumps({"approved": True, "by": "ana@example.com"})  # under 100 bytes


@dataclass(frozen=True)
class Budget:
    """At most this many requests, read and write units (None: no limit set)."""

    requests: int | None = None
    read: float | None = None
    write: float | None = None

    def holds(self, cost: Cost) -> bool:
        return (
            (self.requests is None or cost.requests <= self.requests)
            and (self.read is None or cost.read <= self.read)
            and (self.write is None or cost.write <= self.write)
        )

    def __str__(self) -> str:
        def limit(value: float | None) -> str:
            return "-" if value is None else f"≤ {value:g}"

        return f"{limit(self.requests)} / {limit(self.read)} / {limit(self.write)}"


@dataclass(frozen=True)
class Cost:
    """What one operation asked of DynamoDB."""

    requests: int
    read: float
    write: float
    calls: str

    @classmethod
    def of(cls, requests: list[RecordedRequest]) -> Cost:
        read, write = consumed_capacity(requests)
        return cls(len(requests), read, write, " + ".join(r.operation for r in requests))


# The contract's budgets, in an empty run and in a crowded one alike.
BUDGETS = {
    "register (new, nothing buffered)": Budget(requests=2, read=1, write=3),
    "deliver (hit)": Budget(requests=2, read=1, write=2),
    "deliver (miss)": Budget(read=1),
    "get": Budget(read=1),
}


def crowd(store: FlowSignalStore, run: str) -> None:
    """Fill ``run`` with the crowd: waiters and large delivered payloads of other names."""

    def waiting(n: int) -> None:
        store.register_waiter(run, f"crowd-{n:04d}", f"crowd-signal-{n % 100}")

    def delivered(n: int) -> None:
        store.register_waiter(run, f"document-{n:03d}", f"document-{n}")
        store.deliver_signal(run, f"document-{n}", CROWD_PAYLOAD)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(waiting, range(CROWD_WAITERS)))
        list(pool.map(delivered, range(CROWD_DELIVERED)))


def decisions(store: DynamoDBFlowSignalStore, client: Any, run: str) -> dict[str, Cost]:
    """Each decision once in ``run``, in the order that sets up the next, with its cost."""
    costs: dict[str, Cost] = {}

    def measure(name: str, operation: Callable[[], object]) -> None:
        with record_requests(client, consumed_capacity=True) as requests:
            operation()
        costs[name] = Cost.of(requests)

    past = datetime.now(UTC) - timedelta(seconds=1)
    measure(
        "register (new, nothing buffered)",
        lambda: store.register_waiter(run, "approval", "approve"),
    )
    measure("deliver (hit)", lambda: store.deliver_signal(run, "approve", SMALL_PAYLOAD))
    measure(
        "deliver (already delivered)",
        lambda: store.deliver_signal(run, "approve", SMALL_PAYLOAD),
    )
    measure("deliver (miss)", lambda: store.deliver_signal(run, "absent", SMALL_PAYLOAD))
    store.register_waiter(run, "late", "too-late", past)
    measure("deliver (expired)", lambda: store.deliver_signal(run, "too-late", SMALL_PAYLOAD))
    store.register_waiter(run, "keyed", "keyed")
    measure(
        "deliver (hit, idempotency key)",
        lambda: store.deliver_signal(run, "keyed", SMALL_PAYLOAD, idempotency_key="click-1"),
    )
    measure(
        "deliver (replay)",
        lambda: store.deliver_signal(run, "keyed", SMALL_PAYLOAD, idempotency_key="click-1"),
    )
    measure("get", lambda: store.get_waiter(run, "approval"))
    store.register_waiter(run, "budget", "budget")
    approvals = _approvals(store)
    url = approvals.mint(run, "budget", MintLinksBody(), "https://approvals.example.com")
    token = url["links"]["approve"].rpartition("/")[2]
    measure("link (open the page)", lambda: approvals.inspect(token))
    measure("link (click)", lambda: approvals.decide(token))
    measure("link (open it again: decided)", lambda: approvals.inspect(token))
    return costs


def _approvals(store: DynamoDBFlowSignalStore) -> ApprovalService:
    """The approval pages' service over ``store``, signing with a key of its own."""
    signals = SignalService(store, Metrics(namespace="FlowSignalsBench"))
    keys = FixedLinkKeys(LinkKey(keyId="bench", key=uuid4().hex * 2))
    return ApprovalService(signals, store, store, keys, system_clock)


def empty_and_crowded(store: DynamoDBFlowSignalStore, client: Any) -> tuple[dict[str, Cost], ...]:
    """The decisions' costs in a fresh empty run, then in a fresh crowded one."""
    empty = decisions(store, client, f"empty-{uuid4()}")
    crowded_run = f"crowded-{uuid4()}"
    crowd(store, crowded_run)
    return empty, decisions(store, client, crowded_run)


def report(empty: dict[str, Cost], crowded: dict[str, Cost]) -> str:
    header = f"{'decision':34} {'empty run':>16} {'crowded run':>16}   budget (req / RCU / WCU)"
    lines = [header, "-" * len(header)]
    for name, cost in empty.items():
        other = crowded[name]
        budget = BUDGETS.get(name)
        verdict = ""
        if budget is not None:
            fits = budget.holds(cost) and budget.holds(other)
            verdict = f"{budget}  {'ok' if fits else 'OVER'}"
        figures = [f"{c.requests} / {c.read:g} / {c.write:g}" for c in (cost, other)]
        lines.append(f"{name:34} {figures[0]:>16} {figures[1]:>16}   {verdict}")
        lines.append(f"{'':34} {cost.calls}")
    return "\n".join(lines)
