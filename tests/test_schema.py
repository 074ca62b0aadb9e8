"""template.yaml is the truth about the table; create_waiter_table must make the same table."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import DYNAMODB_BACKENDS, make_backend
from template_yaml import load_template


def template_table() -> dict[str, Any]:
    tables = [
        resource["Properties"]
        for resource in load_template()["Resources"].values()
        if resource["Type"] == "AWS::DynamoDB::Table"
    ]
    assert len(tables) == 1
    return tables[0]


def as_set(entries: list[dict[str, Any]]) -> frozenset[tuple[Any, ...]]:
    return frozenset(tuple(sorted(entry.items())) for entry in entries)


def index_shape(index: dict[str, Any]) -> tuple[Any, ...]:
    projection = index["Projection"]
    return (
        index["IndexName"],
        as_set(index["KeySchema"]),
        projection["ProjectionType"],
        frozenset(projection.get("NonKeyAttributes", [])),
    )


@pytest.fixture(params=DYNAMODB_BACKENDS)
def created_table(request: pytest.FixtureRequest, clock: Any) -> dict[str, Any]:
    backend = make_backend(request.param, request, clock)
    client = backend.client
    table = client.describe_table(TableName=backend.table_name)["Table"]
    ttl = client.describe_time_to_live(TableName=backend.table_name)["TimeToLiveDescription"]
    return {"table": table, "ttl": ttl}


def test_the_created_table_matches_the_template(created_table: dict[str, Any]) -> None:
    expected, table = template_table(), created_table["table"]

    assert as_set(table["KeySchema"]) == as_set(expected["KeySchema"])
    assert as_set(table["AttributeDefinitions"]) == as_set(expected["AttributeDefinitions"])
    assert {index_shape(i) for i in table["GlobalSecondaryIndexes"]} == {
        index_shape(i) for i in expected["GlobalSecondaryIndexes"]
    }
    assert {index_shape(i) for i in table["LocalSecondaryIndexes"]} == {
        index_shape(i) for i in expected["LocalSecondaryIndexes"]
    }
    assert table["BillingModeSummary"]["BillingMode"] == expected["BillingMode"]
    assert table["StreamSpecification"] == {
        "StreamEnabled": True,
        "StreamViewType": expected["StreamSpecification"]["StreamViewType"],
    }
    assert created_table["ttl"]["TimeToLiveStatus"] == "ENABLED"
    assert (
        created_table["ttl"]["AttributeName"]
        == expected["TimeToLiveSpecification"]["AttributeName"]
    )


def test_the_template_table_is_as_the_spec_describes() -> None:
    table = template_table()
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["SSESpecification"] == {"SSEEnabled": True}
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert table["TimeToLiveSpecification"] == {"AttributeName": "Ttl", "Enabled": True}
    assert table["DeletionProtectionEnabled"] == {"Ref": "TableDeletionProtection"}
    assert "TableDeletionProtection" in load_template()["Parameters"]
    (index,) = table["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "RunId-SignalName-index"
    assert index["Projection"] == {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["CreatedAt"]}
    # Decisions read a local index (the only kind read strongly consistently): its entries
    # hold what the rule reads, never a payload, a failure's cause or a task token.
    (local,) = table["LocalSecondaryIndexes"]
    assert local["IndexName"] == "RunId-SignalName-local-index"
    assert as_set(local["KeySchema"]) == as_set(index["KeySchema"])
    projected = set(local["Projection"]["NonKeyAttributes"])
    assert {"CreatedAt", "ExpiresAt", "DeliveredAt", "IdempotencyKey"} <= projected
    assert not projected & {"PayloadJson", "FailureCause", "TaskToken", "Approvals"}
