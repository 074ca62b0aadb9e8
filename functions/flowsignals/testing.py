"""Helpers for tests of code that uses flowsignals: moto, DynamoDB Local, the local server."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs
from uuid import uuid4

from flowsignals.backends.dynamodb import DECISION_INDEX, SIGNAL_INDEX
from flowsignals.backends.dynamodb_items import TTL_ATTRIBUTE

# The create_table arguments of the table in template.yaml (which is the truth;
# tests/test_schema.py keeps the two in step).
WAITER_TABLE_SCHEMA: dict[str, Any] = {
    "BillingMode": "PAY_PER_REQUEST",
    "AttributeDefinitions": [
        {"AttributeName": "RunId", "AttributeType": "S"},
        {"AttributeName": "StepKey", "AttributeType": "S"},
        {"AttributeName": "SignalName", "AttributeType": "S"},
    ],
    "KeySchema": [
        {"AttributeName": "RunId", "KeyType": "HASH"},
        {"AttributeName": "StepKey", "KeyType": "RANGE"},
    ],
    "LocalSecondaryIndexes": [
        {
            "IndexName": DECISION_INDEX,
            "KeySchema": [
                {"AttributeName": "RunId", "KeyType": "HASH"},
                {"AttributeName": "SignalName", "KeyType": "RANGE"},
            ],
            "Projection": {
                "ProjectionType": "INCLUDE",
                "NonKeyAttributes": [
                    "CreatedAt",
                    "ExpiresAt",
                    "DeliveredAt",
                    "IdempotencyKey",
                    "Deciders",
                    "QuorumSize",
                    "ApprovedBy",
                ],
            },
        }
    ],
    "GlobalSecondaryIndexes": [
        {
            "IndexName": SIGNAL_INDEX,
            "KeySchema": [
                {"AttributeName": "RunId", "KeyType": "HASH"},
                {"AttributeName": "SignalName", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["CreatedAt"]},
        }
    ],
    "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    "SSESpecification": {"Enabled": True},
}


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


_READS = frozenset({"Query", "GetItem", "Scan", "BatchGetItem"})


def consumed_capacity(requests: list[RecordedRequest]) -> tuple[float, float]:
    """(read units, write units) the requests consumed, tables and indexes together, as
    recorded by ``record_requests(..., consumed_capacity=True)``."""
    read = write = 0.0
    for request in requests:
        consumed = request.consumed_capacity or {}
        # Batch and transaction calls report a list: an entry per table.
        each = consumed if isinstance(consumed, list) else [consumed]
        units = sum(entry.get("CapacityUnits", 0.0) for entry in each)
        if request.operation in _READS:
            read += units
        else:
            write += units
    return read, write


_ROUTE_PARAMETER = re.compile(r"\{(\w+)\+?\}")


def http_api_event(
    route_key: str,
    path_parameters: dict[str, str] | None = None,
    *,
    body: str | bytes | None = None,
    headers: dict[str, str] | None = None,
    raw_query_string: str = "",
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload format 2.0) event, as API Gateway builds it.

    ``route_key`` is the template's, e.g. ``"PUT /runs/{runId}/waiters/{stepKey}"``;
    ``path_parameters`` are the decoded names, and ``rawPath`` is decoded too. A ``bytes``
    body is sent base64-encoded, as API Gateway does for binary media.
    """
    method, _, route = route_key.partition(" ")
    parameters = dict(path_parameters or {})
    raw_path = _ROUTE_PARAMETER.sub(lambda match: parameters[match[1]], route)
    now = datetime.now(UTC)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": raw_path,
        "rawQueryString": raw_query_string,
        "headers": {
            "accept": "*/*",
            "content-length": str(len(body or "")),
            "host": "localhost",
            "user-agent": "flowsignals-test",
            **{name.lower(): value for name, value in (headers or {}).items()},
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": "localhost",
            "domainPrefix": "localhost",
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "flowsignals-test",
            },
            "requestId": str(uuid4()),
            "routeKey": route_key,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": isinstance(body, bytes),
    }
    if parameters:
        event["pathParameters"] = parameters
    query = parse_qs(raw_query_string, keep_blank_values=True)
    if query:  # repeated names joined with commas, as API Gateway does
        event["queryStringParameters"] = {name: ",".join(v) for name, v in query.items()}
    if isinstance(body, bytes):
        event["body"] = base64.b64encode(body).decode("ascii")
    elif body is not None:
        event["body"] = body
    return event


@dataclass
class FakeLambdaContext:
    """The attributes of a Lambda context that Powertools reads."""

    function_name: str = "flowsignals-local"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:flowsignals-local"
    aws_request_id: str = field(default_factory=lambda: str(uuid4()))
    log_group_name: str = "/aws/lambda/flowsignals-local"
    log_stream_name: str = "local"
    remaining_time_in_millis: int = 30_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_time_in_millis
