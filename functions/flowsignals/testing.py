"""Helpers for tests of code that uses flowsignals: moto, DynamoDB Local, the local server."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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


@dataclass
class RecordedRequest:
    """One DynamoDB API call: its operation, parameters and reported ConsumedCapacity."""

    operation: str
    params: dict[str, Any]
    consumed_capacity: dict[str, Any] | None = None


@contextmanager
def record_requests(
    client: Any, *, consumed_capacity: bool = False
) -> Iterator[list[RecordedRequest]]:
    """Record every DynamoDB call ``client`` makes inside the block (retries are not calls).

    With ``consumed_capacity``, each call that can report it asks for
    ``ReturnConsumedCapacity=INDEXES`` (table and index units, as billed).
    """
    requests: list[RecordedRequest] = []

    def before(params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        if consumed_capacity and "ReturnConsumedCapacity" in model.input_shape.members:
            params["ReturnConsumedCapacity"] = "INDEXES"
        context["flowsignals_request"] = request = RecordedRequest(model.name, dict(params))
        requests.append(request)

    def after(parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        request = context.get("flowsignals_request")
        if request is not None:
            request.consumed_capacity = parsed.get("ConsumedCapacity")

    events = client.meta.events
    events.register("provide-client-params.dynamodb", before)
    events.register("after-call.dynamodb", after)
    try:
        yield requests
    finally:
        events.unregister("provide-client-params.dynamodb", before)
        events.unregister("after-call.dynamodb", after)
