"""The DynamoDB backend (SPEC section 2): the only module of the package that talks to DynamoDB.

One row per waiter, keyed ``RunId`` + ``StepKey``. The index ``RunId-SignalName-index``
projects only ``CreatedAt``, so a delivery (which sets ``DeliveredAt``/``PayloadJson``)
writes the table and never the index. Index reads are eventually consistent: they only
propose a receiver; every answer other than a successful write is confirmed by a
strongly consistent query of the run's partition.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from flowsignals.errors import FlowSignalError, StoreUnavailable
from flowsignals.models import FlowSignalWaiter, SignalDeliveryResult
from flowsignals.store import (
    Clock,
    delivered,
    next_receiver,
    oldest_first,
    read_clock,
    replay_of,
    replayed,
    system_clock,
    undeliverable,
)
from flowsignals.values import (
    check_delivery,
    check_registration,
    check_waiter_key,
    epoch_seconds,
    format_timestamp,
    parse_run_id,
    parse_timestamp,
)

SIGNAL_INDEX = "RunId-SignalName-index"
TTL_ATTRIBUTE = "Ttl"

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

# "TTL" is a DynamoDB reserved word (case-insensitively), so Ttl goes by a placeholder.
_TTL_NAME = {"#ttl": TTL_ATTRIBUTE}
_RUN = "RunId = :run_id"
_RUN_AND_SIGNAL = "RunId = :run_id AND SignalName = :signal_name"
_HAS_SIGNAL = "SignalName = :signal_name"
# SignalName = :signal_name is false on a missing row, so a delivery never creates one.
_DELIVERABLE = (
    "attribute_not_exists(DeliveredAt) AND SignalName = :signal_name"
    " AND (attribute_not_exists(ExpiresAt) OR ExpiresAt > :now)"
)
_DELIVER = "SET DeliveredAt = :now, PayloadJson = :payload_json, #ttl = :ttl"
_DELIVER_WITH_KEY = _DELIVER + ", IdempotencyKey = :idempotency_key"
_UNDELIVERED = "attribute_not_exists(DeliveredAt)"
_DELIVERED = "attribute_exists(DeliveredAt)"
# What the delivery rule reads of each waiter: everything but the payload and the token.
_RULE_ATTRIBUTES = "RunId, StepKey, SignalName, CreatedAt, ExpiresAt, DeliveredAt, IdempotencyKey"

# Codes that say "try later", not "you asked wrong".
_TRANSIENT_ERRORS = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionConflictException",
    }
)
# Each round is one conditional write that lost a race to another writer; a run of
# this many losses means heavy contention, answered as a transient failure.
_MAX_WRITE_ROUNDS = 16


def default_client() -> Any:
    """A DynamoDB client: botocore standard retries (4 attempts for DynamoDB), short timeouts.

    The endpoint follows the usual AWS settings (``AWS_ENDPOINT_URL_DYNAMODB``, region).
    """
    return boto3.client(
        "dynamodb",
        config=Config(
            retries={"mode": "standard"},
            connect_timeout=2,
            read_timeout=5,
        ),
    )


class _ConditionFailed(Exception):
    """A conditional write did not apply; ``old`` is the row it found, if any."""

    def __init__(self, old: dict[str, Any] | None) -> None:
        super().__init__("condition failed")
        self.old = old


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def _key(run: UUID, step_key: str) -> dict[str, dict[str, str]]:
    return {"RunId": _s(str(run)), "StepKey": _s(step_key)}


def _waiter_from_item(item: dict[str, Any]) -> FlowSignalWaiter:
    def text(name: str) -> str | None:
        return item[name]["S"] if name in item else None

    def instant(name: str) -> datetime | None:
        value = text(name)
        return None if value is None else parse_timestamp(value)

    return FlowSignalWaiter(
        run_id=UUID(item["RunId"]["S"]),
        step_key=item["StepKey"]["S"],
        signal_name=item["SignalName"]["S"],
        created_at=parse_timestamp(item["CreatedAt"]["S"]),
        expires_at=instant("ExpiresAt"),
        delivered_at=instant("DeliveredAt"),
        payload_json=text("PayloadJson"),
        idempotency_key=text("IdempotencyKey"),
        task_token=text("TaskToken"),
    )


class DynamoDBFlowSignalStore:
    """A ``FlowSignalStore`` on the table of ``template.yaml``."""

    def __init__(
        self,
        table_name: str,
        *,
        client: Any = None,
        clock: Clock | None = None,
        retention: timedelta = timedelta(days=7),
    ) -> None:
        if retention < timedelta(0):
            raise ValueError("retention must not be negative")
        self._table_name = table_name
        self._client = client if client is not None else default_client()
        self._clock = clock or system_clock
        self._retention_seconds = int(retention.total_seconds())

    # --- operations -------------------------------------------------------------------

    def register_waiter(
        self,
        run_id: UUID | str,
        step_key: str,
        signal_name: str,
        expires_at: datetime | None = None,
        *,
        task_token: str | None = None,
    ) -> FlowSignalWaiter:
        run, key, name, deadline, token = check_registration(
            run_id, step_key, signal_name, expires_at, task_token
        )
        now = read_clock(self._clock)
        # Atomic: one conditional UpdateItem per attempt. The first assumes the row is new
        # or undelivered (it owns Ttl then); if a delivery got there first, the second
        # leaves Ttl as the tombstone's. A row removed in between starts over.
        for _ in range(_MAX_WRITE_ROUNDS):
            for already_delivered in (False, True):
                try:
                    response = self._call(
                        "update_item",
                        Key=_key(run, key),
                        ReturnValues="ALL_NEW",
                        **self._register_update(name, deadline, token, now, already_delivered),
                    )
                except _ConditionFailed:
                    continue
                return _waiter_from_item(response["Attributes"])
        raise StoreUnavailable("register_waiter kept racing other writers of the waiter")

    def deliver_signal(
        self,
        run_id: UUID | str,
        signal_name: str,
        payload_json: str,
        *,
        idempotency_key: str | None = None,
    ) -> SignalDeliveryResult:
        run, name, payload, idem_key = check_delivery(
            run_id, signal_name, payload_json, idempotency_key
        )
        now = read_clock(self._clock)
        # Replay comes first, and only the table holds each waiter's IdempotencyKey: a
        # keyed delivery starts from the consistent read. An unkeyed one tries the index's
        # sole candidate first (the common case: one waiter per signal name).
        target = None if idem_key is not None else self._sole_index_candidate(run, name)
        for _ in range(_MAX_WRITE_ROUNDS):
            if target is not None:
                try:
                    self._deliver_to(run, target, name, payload, idem_key, now)
                except _ConditionFailed as failed:
                    old = failed.old
                    if idem_key is not None and old and old.get("IdempotencyKey") == _s(idem_key):
                        # A concurrent request with the same key delivered it first.
                        return replayed(_waiter_from_item(old))
                else:
                    return delivered(target, now)
            ordered = self._matching_waiters(run, name)
            replay = replay_of(ordered, idem_key)
            if replay is not None:
                return replay
            receiver = next_receiver(ordered, now)
            if receiver is None:
                return undeliverable(ordered, now)
            target = receiver.step_key
        raise StoreUnavailable("deliver_signal kept losing races for the run's waiters")

    def get_waiter(self, run_id: UUID | str, step_key: str) -> FlowSignalWaiter | None:
        run, key = check_waiter_key(run_id, step_key)
        response = self._call("get_item", Key=_key(run, key), ConsistentRead=True)
        item = response.get("Item")
        return None if item is None else _waiter_from_item(item)

    def remove_waiter(self, run_id: UUID | str, step_key: str) -> None:
        run, key = check_waiter_key(run_id, step_key)
        self._call("delete_item", Key=_key(run, key))

    def list_waiters(self, run_id: UUID | str) -> list[FlowSignalWaiter]:
        run = parse_run_id(run_id)
        items = self._query(
            KeyConditionExpression=_RUN,
            ExpressionAttributeValues={":run_id": _s(str(run))},
            ConsistentRead=True,
        )
        return oldest_first(_waiter_from_item(item) for item in items)

    # --- building blocks --------------------------------------------------------------

    def _ttl(self, instant: datetime) -> dict[str, str]:
        return _n(epoch_seconds(instant) + self._retention_seconds)

    def _register_update(
        self,
        name: str,
        deadline: datetime | None,
        token: str | None,
        now: datetime,
        already_delivered: bool,
    ) -> dict[str, Any]:
        sets = ["SignalName = :signal_name"]
        removes = []
        values = {":signal_name": _s(name)}
        if deadline is None:
            removes.append("ExpiresAt")
        else:
            sets.append("ExpiresAt = :expires_at")
            values[":expires_at"] = _s(format_timestamp(deadline))
        if token is None:
            removes.append("TaskToken")
        else:
            sets.append("TaskToken = :task_token")
            values[":task_token"] = _s(token)
        if not already_delivered:
            sets.append("CreatedAt = if_not_exists(CreatedAt, :now)")
            values[":now"] = _s(format_timestamp(now))
            # An undelivered row lives until its deadline + retention, or forever.
            if deadline is None:
                removes.append("#ttl")
            else:
                sets.append("#ttl = :ttl")
                values[":ttl"] = self._ttl(deadline)
        update = f"SET {', '.join(sets)}"
        if removes:
            update += f" REMOVE {', '.join(removes)}"
        params: dict[str, Any] = {
            "UpdateExpression": update,
            "ConditionExpression": _DELIVERED if already_delivered else _UNDELIVERED,
            "ExpressionAttributeValues": values,
        }
        if "#ttl" in update:
            params["ExpressionAttributeNames"] = _TTL_NAME
        return params

    def _deliver_to(
        self,
        run: UUID,
        step_key: str,
        name: str,
        payload: str,
        idem_key: str | None,
        now: datetime,
    ) -> None:
        values = {
            ":signal_name": _s(name),
            ":now": _s(format_timestamp(now)),
            ":payload_json": _s(payload),
            ":ttl": self._ttl(now),
        }
        if idem_key is not None:
            values[":idempotency_key"] = _s(idem_key)
        # Atomic: one conditional UpdateItem. attribute_not_exists(DeliveredAt) lets exactly
        # one of any number of concurrent deliveries write; the losers get the row back.
        self._call(
            "update_item",
            Key=_key(run, step_key),
            UpdateExpression=_DELIVER if idem_key is None else _DELIVER_WITH_KEY,
            ConditionExpression=_DELIVERABLE,
            ExpressionAttributeNames=_TTL_NAME,
            ExpressionAttributeValues=values,
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )

    def _sole_index_candidate(self, run: UUID, name: str) -> str | None:
        """The step key when the (eventually consistent) index shows exactly one waiter."""
        response = self._call(
            "query",
            IndexName=SIGNAL_INDEX,
            KeyConditionExpression=_RUN_AND_SIGNAL,
            ExpressionAttributeValues={":run_id": _s(str(run)), ":signal_name": _s(name)},
            Limit=2,
        )
        items = response.get("Items", [])
        return str(items[0]["StepKey"]["S"]) if len(items) == 1 else None

    def _matching_waiters(self, run: UUID, name: str) -> list[FlowSignalWaiter]:
        """The run's waiters of that signal name, strongly consistent, oldest first."""
        items = self._query(
            KeyConditionExpression=_RUN,
            FilterExpression=_HAS_SIGNAL,
            ProjectionExpression=_RULE_ATTRIBUTES,
            ExpressionAttributeValues={":run_id": _s(str(run)), ":signal_name": _s(name)},
            ConsistentRead=True,
        )
        return oldest_first(_waiter_from_item(item) for item in items)

    def _query(self, **params: Any) -> Iterator[dict[str, Any]]:
        """Every item of a query, page after page (a page stops at 1 MB)."""
        while True:
            page = self._call("query", **params)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            params = {**params, "ExclusiveStartKey": page["LastEvaluatedKey"]}

    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        """One DynamoDB request, its failures turned into the store's errors."""
        try:
            response: dict[str, Any] = getattr(self._client, operation)(
                TableName=self._table_name, **params
            )
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code == "ConditionalCheckFailedException":
                raise _ConditionFailed(error.response.get("Item")) from None
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if code in _TRANSIENT_ERRORS or status >= 500:
                raise StoreUnavailable(
                    f"DynamoDB {operation} failed after retries: {code}"
                ) from error
            raise FlowSignalError(f"DynamoDB refused {operation}: {code}") from error
        except (BotoConnectionError, HTTPClientError) as error:
            raise StoreUnavailable(f"DynamoDB could not be reached: {error}") from error
        except BotoCoreError as error:
            raise FlowSignalError(f"DynamoDB {operation} failed: {error}") from error
        return response
