"""Moving an existing table's rows to the table a schema change makes CloudFormation create
(infra/migrate_table.py, docs/operations.md): on DynamoDB Local, from a table of the schema
before the local index to one of today's, and the store then carries on where it stopped."""

from __future__ import annotations

import os
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from conftest import FakeClock
from flowsignals import DynamoDBFlowSignalStore, SignalDeliveryStatus, SignalFailure
from flowsignals.core.links import ApprovalLink, LinkAction
from flowsignals.testing import WAITER_TABLE_SCHEMA, create_waiter_table
from migrate_table import migrate

pytestmark = pytest.mark.dynamodb_local
ROOT = Path(__file__).resolve().parent.parent

# The table as deployed before the local index: the schema of today without it.
SCHEMA_BEFORE_THE_LOCAL_INDEX = {
    name: value for name, value in WAITER_TABLE_SCHEMA.items() if name != "LocalSecondaryIndexes"
}


def scan(client: Any, table: str) -> list[dict[str, Any]]:
    items = client.scan(TableName=table, ConsistentRead=True)["Items"]
    return sorted(items, key=lambda item: (item["RunId"]["S"], item["StepKey"]["S"]))


@pytest.fixture
def tables(dynamodb_local_table: tuple[Any, str]) -> tuple[Any, str, str]:
    client, _ = dynamodb_local_table
    old, new = f"old-{uuid4().hex[:8]}", f"new-{uuid4().hex[:8]}"
    client.create_table(TableName=old, **SCHEMA_BEFORE_THE_LOCAL_INDEX)
    create_waiter_table(client, new)
    return client, old, new


def old_rows(client: Any, clock: FakeClock) -> tuple[list[dict[str, Any]], str]:
    """Rows of every kind, as the store writes them (written through a scratch table of
    today's schema: the rows themselves did not change)."""
    scratch = f"scratch-{uuid4().hex[:8]}"
    create_waiter_table(client, scratch)
    store = DynamoDBFlowSignalStore(scratch, client=client, clock=clock)
    run = str(uuid4())
    store.register_waiter(run, "approved", "approve", task_token="token-1")
    store.deliver_signal(run, "approve", '{"ok": true}', idempotency_key="click-1")
    store.register_waiter(run, "rejected", "review")
    store.deliver_signal(run, "review", failure=SignalFailure(error="Rejected", cause="no"))
    store.register_waiter(run, "waiting", "approve", clock.now + timedelta(hours=1))
    store.register_waiter(run, "expired", "late", clock.now)
    store.deliver_signal(run, "ship", "{}", buffer_for=timedelta(hours=1))
    store.save_link(
        ApprovalLink(
            link_id="a" * 32,
            run_id=run,
            signal_name="approve",
            created_at=clock.now,
            expires_at=clock.now + timedelta(days=1),
            actions={"approve": LinkAction(label="Approve", payload_json="true")},
        )
    )
    clock.advance(seconds=1)
    return scan(client, scratch), run


def test_every_row_moves_and_the_store_carries_on_from_them(
    tables: tuple[Any, str, str], clock: FakeClock
) -> None:
    client, old, new = tables
    rows, run = old_rows(client, clock)
    for row in rows:
        client.put_item(TableName=old, Item=row)

    counts = migrate(client, old, new)

    assert counts == {"copied": len(rows)}
    assert scan(client, new) == rows
    store = DynamoDBFlowSignalStore(new, client=client, clock=clock)
    # Registered within one instant: oldest first is then by step key.
    assert [w.step_key for w in store.list_waiters(run)] == [
        "approved",
        "expired",
        "rejected",
        "waiting",
    ]
    replay = store.deliver_signal(run, "approve", '{"ok": true}', idempotency_key="click-1")
    assert (replay.status, replay.step_key, replay.replayed) == ("Delivered", "approved", True)
    fresh = store.deliver_signal(run, "approve", "{}")  # the local index holds the copies
    assert (fresh.status, fresh.step_key) == (SignalDeliveryStatus.DELIVERED, "waiting")
    assert store.deliver_signal(run, "late", "{}").status is SignalDeliveryStatus.EXPIRED
    again = store.deliver_signal(run, "review", "{}")
    assert (again.status, again.step_key) == (SignalDeliveryStatus.ALREADY_DELIVERED, "rejected")
    shipped = store.register_waiter(run, "shipping", "ship")  # the early signal moved too
    assert shipped.is_delivered and shipped.payload_json == "{}"
    assert store.get_link("a" * 32) is not None
    assert [w.step_key for w in store.list_waiters(run, signal_name="approve")] == [
        "approved",
        "waiting",
    ]


def test_rows_written_to_the_new_table_meanwhile_are_kept_and_a_rerun_copies_nothing(
    tables: tuple[Any, str, str], clock: FakeClock
) -> None:
    client, old, new = tables
    rows, run = old_rows(client, clock)
    for row in rows:
        client.put_item(TableName=old, Item=row)
    # After the switch, the step "waiting" was delivered in the new table before the copy.
    store = DynamoDBFlowSignalStore(new, client=client, clock=clock)
    store.register_waiter(run, "waiting", "approve")
    store.deliver_signal(run, "approve", '"newer"')

    first = migrate(client, old, new)
    second = migrate(client, old, new, segments=2)

    assert first == {"copied": len(rows) - 1, "already in the target": 1}
    assert second == {"already in the target": len(rows)}
    waiting = store.get_waiter(run, "waiting")
    assert waiting is not None and waiting.payload_json == '"newer"'


def test_it_refuses_a_target_without_the_local_index_or_the_source_itself(
    tables: tuple[Any, str, str],
) -> None:
    client, old, new = tables
    with pytest.raises(ValueError, match="RunId-SignalName-local-index"):
        migrate(client, new, old)
    with pytest.raises(ValueError, match="same table"):
        migrate(client, new, new)


def test_the_documented_make_target_moves_the_rows(
    tables: tuple[Any, str, str], dynamodb_local_endpoint: str, clock: FakeClock
) -> None:
    client, old, new = tables
    rows, _ = old_rows(client, clock)
    for row in rows:
        client.put_item(TableName=old, Item=row)
    environment = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MAKELEVEL"}}
    command = ["make", "-s", "migrate-table", f"SOURCE={old}", f"TARGET={new}"]

    done = subprocess.run(
        [*command, f"ENDPOINT={dynamodb_local_endpoint}"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    usage = subprocess.run(command[:3], cwd=ROOT, env=environment, capture_output=True, check=False)

    assert done.returncode == 0, done.stderr
    assert f"{len(rows)} rows copied from {old} to {new}" in done.stdout
    assert scan(client, new) == rows
    assert usage.returncode == 2
