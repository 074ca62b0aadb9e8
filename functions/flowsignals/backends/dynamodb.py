"""The DynamoDB backend: the only module of the package that talks to DynamoDB.

One row per waiter, keyed ``RunId`` + ``StepKey`` (the table of ``template.yaml``). Every
decision is made on strongly consistent reads of the run's partition and carried out by
conditional writes, so neither a lagging index nor a concurrent writer can make a delivery
skip the oldest waiter or land twice.
"""

from __future__ import annotations

import heapq
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from flowsignals.core.arguments import (
    Delivery,
    check_delivery,
    check_page,
    check_registration,
    check_run,
    check_waiter_key,
)
from flowsignals.core.errors import FlowSignalError, StoreUnavailable
from flowsignals.core.models import FlowSignalWaiter, SignalDeliveryResult
from flowsignals.core.store import (
    Clock,
    WaiterPosition,
    delivered,
    oldest_first,
    read_clock,
    replay_of,
    replayed,
    system_clock,
    undeliverable,
)
from flowsignals.core.values import format_timestamp, parse_timestamp

SIGNAL_INDEX = "RunId-SignalName-index"
TTL_ATTRIBUTE = "Ttl"
DEFAULT_RETENTION = timedelta(days=7)

# "TTL" is a DynamoDB reserved word (case-insensitively), so Ttl goes by a placeholder.
_TTL_NAME = {"#ttl": TTL_ATTRIBUTE}
_RUN = "RunId = :run_id"
_HAS_SIGNAL = "SignalName = :signal_name"
# SignalName = :signal_name is false on a missing row, so a delivery never creates one.
_DELIVERABLE = (
    "attribute_not_exists(DeliveredAt) AND SignalName = :signal_name"
    " AND (attribute_not_exists(ExpiresAt) OR ExpiresAt > :now)"
)
# DeliveryId names the attempt that wrote the delivery: when DynamoDB applied a write whose
# answer was lost and botocore sent it again, the repeat finds its own id in the row.
_DELIVER = (
    "SET DeliveredAt = :now, PayloadJson = :payload_json, DeliveryId = :delivery_id, #ttl = :ttl"
)
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
# A register races only a delivery or a removal of its own row: a few rounds settle it.
_MAX_REGISTER_ROUNDS = 16
# A delivery reads again only after every waiter it saw was taken by other deliveries, so each
# round means others made progress; this bounds a run that keeps gaining waiters meanwhile.
_MAX_DELIVERY_ROUNDS = 64

# The instant (time.monotonic()) by which the current operation must have answered.
_answer_by: ContextVar[float | None] = ContextVar("flowsignals_answer_by", default=None)


@contextmanager
def answer_within(seconds: float) -> Iterator[None]:
    """Inside the block, a DynamoDB attempt (a first try or a retry) starts only when it can
    finish before ``seconds`` from now, given the client's connect and read timeouts;
    otherwise the operation raises ``StoreUnavailable`` in time to be answered."""
    token = _answer_by.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _answer_by.reset(token)


def default_client() -> Any:
    """A DynamoDB client: botocore standard retries, timeouts short enough that a retry fits
    in a Lambda invocation. The endpoint follows the usual AWS settings
    (``AWS_ENDPOINT_URL_DYNAMODB``, region)."""
    return boto3.client(
        "dynamodb",
        config=Config(
            retries={"mode": "standard", "total_max_attempts": 4},
            connect_timeout=1,
            read_timeout=3,
        ),
    )


def _refuse_late_attempts(client: Any) -> None:
    """Make the client honour ``answer_within`` (once per client, however many stores)."""
    config = client.meta.config
    attempt_seconds = (config.connect_timeout or 0) + (config.read_timeout or 0)

    def refuse_late_attempt(**_: Any) -> None:
        answer_by = _answer_by.get()
        if answer_by is not None and time.monotonic() + attempt_seconds > answer_by:
            raise _OutOfTime

    client.meta.events.register(
        "before-send.dynamodb", refuse_late_attempt, unique_id="flowsignals-answer-within"
    )


class _ConditionFailed(Exception):
    """A conditional write did not apply; ``old`` is the row it found, if any."""

    def __init__(self, old: dict[str, Any] | None) -> None:
        super().__init__("condition failed")
        self.old = old


class _OutOfTime(Exception):
    """Another attempt could not finish before the operation must answer."""


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def _key(run: str, step_key: str) -> dict[str, dict[str, str]]:
    return {"RunId": _s(run), "StepKey": _s(step_key)}


def _waiter_from_item(item: dict[str, Any]) -> FlowSignalWaiter:
    def text(name: str) -> str | None:
        return item[name]["S"] if name in item else None

    def instant(name: str) -> datetime | None:
        value = text(name)
        return None if value is None else parse_timestamp(value)

    return FlowSignalWaiter(
        run_id=item["RunId"]["S"],
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
        retention: timedelta = DEFAULT_RETENTION,
    ) -> None:
        if retention < timedelta(0):
            raise ValueError("retention must not be negative")
        self._table_name = table_name
        self._client = client if client is not None else default_client()
        self._clock = clock or system_clock
        self._retention_seconds = int(retention.total_seconds())
        _refuse_late_attempts(self._client)

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
        arguments = check_registration(run_id, step_key, signal_name, expires_at, task_token)
        now = read_clock(self._clock)
        # Atomic: one conditional UpdateItem per attempt. The first assumes the row is new
        # or undelivered (it owns Ttl then); if a delivery got there first, the second
        # leaves Ttl as the tombstone's. A row removed in between starts over.
        for _ in range(_MAX_REGISTER_ROUNDS):
            for already_delivered in (False, True):
                try:
                    response = self._call(
                        "update_item",
                        Key=_key(arguments.run_id, arguments.step_key),
                        ReturnValues="ALL_NEW",
                        **self._register_update(
                            arguments.signal_name,
                            arguments.expires_at,
                            arguments.task_token,
                            now,
                            already_delivered,
                        ),
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
        arguments = check_delivery(run_id, signal_name, payload_json, idempotency_key)
        run, name, key = arguments.run_id, arguments.signal_name, arguments.idempotency_key
        attempt = uuid.uuid4().hex
        # The receivers come from a strongly consistent read of the run's partition, never
        # from the index: an index that lags could hide an older waiter. Concurrent
        # deliveries read the same receivers; each loser of a conditional write moves on to
        # the next receiver it read, so N deliveries spread over N waiters in one round.
        # (Always the next, never a later one: skipping could leave an older waiter behind.)
        for _ in range(_MAX_DELIVERY_ROUNDS):
            now = read_clock(self._clock)
            ordered = self._matching_waiters(run, name)
            replay = replay_of(ordered, key)
            if replay is not None:
                return replay
            receivers = [w for w in ordered if not w.is_delivered and not w.is_expired(now)]
            if not receivers:
                return undeliverable(ordered, now)
            for receiver in receivers:
                try:
                    self._deliver_to(run, receiver.step_key, name, arguments, attempt, now)
                except _ConditionFailed as failed:
                    old = failed.old or {}
                    if old.get("DeliveryId") == _s(attempt):
                        return delivered(receiver.step_key, now)  # our write; its answer lost
                    if key is not None and old.get("IdempotencyKey") == _s(key):
                        return replayed(_waiter_from_item(old))  # a retry with our key won
                else:
                    return delivered(receiver.step_key, now)
        raise StoreUnavailable("deliver_signal kept finding the run's waiters taken")

    def get_waiter(self, run_id: UUID | str, step_key: str) -> FlowSignalWaiter | None:
        waiter = check_waiter_key(run_id, step_key)
        response = self._call(
            "get_item", Key=_key(waiter.run_id, waiter.step_key), ConsistentRead=True
        )
        item = response.get("Item")
        return None if item is None else _waiter_from_item(item)

    def remove_waiter(self, run_id: UUID | str, step_key: str) -> None:
        waiter = check_waiter_key(run_id, step_key)
        self._call("delete_item", Key=_key(waiter.run_id, waiter.step_key))

    def list_waiters(self, run_id: UUID | str) -> list[FlowSignalWaiter]:
        return oldest_first(self._run_waiters(check_run(run_id)))

    def list_waiters_page(
        self, run_id: UUID | str, *, limit: int, after: WaiterPosition | None = None
    ) -> list[FlowSignalWaiter]:
        page = check_page(run_id, limit, after)
        following = (
            waiter
            for waiter in self._run_waiters(page.run_id)
            if page.after is None or waiter.position > page.after
        )
        # The partition is read in key order, 1 MB at a time; only the page is kept.
        return heapq.nsmallest(page.limit, following, key=lambda waiter: waiter.position)

    # --- building blocks --------------------------------------------------------------

    def _ttl(self, instant: datetime) -> dict[str, str]:
        return _n(int(instant.timestamp()) + self._retention_seconds)

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
        run: str,
        step_key: str,
        name: str,
        arguments: Delivery,
        attempt: str,
        now: datetime,
    ) -> None:
        values = {
            ":signal_name": _s(name),
            ":now": _s(format_timestamp(now)),
            ":payload_json": _s(arguments.payload_json),
            ":delivery_id": _s(attempt),
            ":ttl": self._ttl(now),
        }
        key = arguments.idempotency_key
        if key is not None:
            values[":idempotency_key"] = _s(key)
        # Atomic: one conditional UpdateItem. attribute_not_exists(DeliveredAt) lets exactly
        # one of any number of concurrent deliveries write; the losers get the row back.
        self._call(
            "update_item",
            Key=_key(run, step_key),
            UpdateExpression=_DELIVER if key is None else _DELIVER_WITH_KEY,
            ConditionExpression=_DELIVERABLE,
            ExpressionAttributeNames=_TTL_NAME,
            ExpressionAttributeValues=values,
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )

    def _matching_waiters(self, run: str, name: str) -> list[FlowSignalWaiter]:
        """The run's waiters of that signal name, strongly consistent, oldest first."""
        items = self._query(
            KeyConditionExpression=_RUN,
            FilterExpression=_HAS_SIGNAL,
            ProjectionExpression=_RULE_ATTRIBUTES,
            ExpressionAttributeValues={":run_id": _s(run), ":signal_name": _s(name)},
            ConsistentRead=True,
        )
        return oldest_first(_waiter_from_item(item) for item in items)

    def _run_waiters(self, run: str) -> Iterator[FlowSignalWaiter]:
        items = self._query(
            KeyConditionExpression=_RUN,
            ExpressionAttributeValues={":run_id": _s(run)},
            ConsistentRead=True,
        )
        return (_waiter_from_item(item) for item in items)

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
        except _OutOfTime:
            raise StoreUnavailable(
                f"DynamoDB {operation}: no time left for another attempt"
            ) from None
        except BotoCoreError as error:
            raise FlowSignalError(f"DynamoDB {operation} failed: {error}") from error
        return response
