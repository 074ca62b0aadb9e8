"""Helpers for tests of code that uses flowsignals: moto, DynamoDB Local, the local server."""

from __future__ import annotations

from typing import Any

from flowsignals.dynamodb import TTL_ATTRIBUTE, WAITER_TABLE_SCHEMA


def create_waiter_table(client: Any, table_name: str) -> None:
    """Create the waiter table with the schema of ``template.yaml`` and wait until it is ACTIVE.

    ``client`` is a boto3 DynamoDB client (moto's, DynamoDB Local's or AWS's).
    """
    client.create_table(TableName=table_name, **WAITER_TABLE_SCHEMA)
    client.get_waiter("table_exists").wait(
        TableName=table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    client.update_time_to_live(
        TableName=table_name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
    )
