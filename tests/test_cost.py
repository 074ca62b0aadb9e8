"""Cost does not grow with the run: every decision reads only its own signal's rows. Measured
on DynamoDB Local (capacity as DynamoDB bills it) in an empty run and in a run crowded with
1,000 waiters and 30 MB of delivered payloads of other names."""

from __future__ import annotations

from typing import Any

import pytest

from capacity import BUDGETS, Cost, empty_and_crowded
from flowsignals import DynamoDBFlowSignalStore
from flowsignals.backends.dynamodb import DECISION_INDEX, SIGNAL_INDEX
from flowsignals.testing import record_requests

# One worker measures for the whole module: the crowded run takes seconds to fill.
pytestmark = [pytest.mark.dynamodb_local, pytest.mark.xdist_group("cost")]


@pytest.fixture(scope="module")
def measured(dynamodb_local_table: tuple[Any, str]) -> tuple[dict[str, Cost], dict[str, Cost]]:
    client, table = dynamodb_local_table
    empty, crowded = empty_and_crowded(DynamoDBFlowSignalStore(table, client=client), client)
    return empty, crowded


@pytest.mark.parametrize("decision", sorted(BUDGETS))
def test_each_decision_keeps_its_budget_in_an_empty_and_a_crowded_run(
    measured: tuple[dict[str, Cost], dict[str, Cost]], decision: str
) -> None:
    empty, crowded = measured
    assert BUDGETS[decision].holds(empty[decision]), empty[decision]
    assert BUDGETS[decision].holds(crowded[decision]), crowded[decision]


def test_no_decision_costs_more_in_a_crowded_run(
    measured: tuple[dict[str, Cost], dict[str, Cost]],
) -> None:
    empty, crowded = measured
    assert set(empty) == set(crowded)
    for decision, cost in empty.items():
        assert crowded[decision] == cost, decision
    # The crowd was really there to be read: a delivery reads less than one of its payloads.
    assert crowded["deliver (hit)"].read < 100_000 / 4096


def test_decisions_read_the_local_index_strongly_consistently(
    dynamodb_local_table: tuple[Any, str],
) -> None:
    client, table = dynamodb_local_table
    store = DynamoDBFlowSignalStore(table, client=client)
    with record_requests(client) as requests:
        store.register_waiter("cost-index-run", "s", "go")
        store.deliver_signal("cost-index-run", "go", "{}")
        store.deliver_signal("cost-index-run", "go", "{}")
    queries = [r.params for r in requests if r.operation == "Query"]
    decision_reads = [q for q in queries if q.get("IndexName") == DECISION_INDEX]
    assert len(decision_reads) == 2
    assert all(q["ConsistentRead"] is True for q in decision_reads)
    assert not any(q.get("IndexName") == SIGNAL_INDEX for q in queries)
