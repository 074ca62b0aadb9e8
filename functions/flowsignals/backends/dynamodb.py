"""The DynamoDB backend: the store on the table of ``template.yaml`` (rows: ``dynamodb_items``,
the client: ``dynamodb_client``; no other module of the package talks to DynamoDB).

Every decision is made on a strongly consistent read of its own signal's waiters (the local
index ``DECISION_INDEX``: the rule's attributes, no payload) and carried out by conditional
writes, so neither a lagging index nor a concurrent writer can make a delivery skip the
oldest waiter or land twice, and its cost does not grow with the rest of the run.
"""

from __future__ import annotations

import heapq
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any
from uuid import UUID

from flowsignals.backends import dynamodb_expressions as expressions
from flowsignals.backends import dynamodb_items as items
from flowsignals.backends.aws import answer_within, refuse_late_attempts
from flowsignals.backends.dynamodb_client import (
    ConditionFailed,
    TransactionCanceled,
    call,
    default_client,
)
from flowsignals.core.arguments import (
    Delivery,
    Registration,
    check_delivery,
    check_page,
    check_registration,
    check_run,
    check_signal,
    check_waiter_key,
)
from flowsignals.core.decisions import (
    Action,
    Step,
    allowed,
    approval_replay,
    early_receivers,
    pending,
    step_for,
)
from flowsignals.core.errors import FlowSignalError, StoreUnavailable
from flowsignals.core.models import (
    BufferedSignal,
    FlowSignalWaiter,
    SignalDeliveryResult,
    SignalFailure,
)
from flowsignals.core.store import (
    Clock,
    WaiterPosition,
    buffered,
    can_receive,
    delivered,
    oldest_first,
    read_clock,
    replay_of,
    replayed,
    system_clock,
    undeliverable,
    with_delivery,
)
from flowsignals.core.values import format_timestamp, parse_timestamp

if TYPE_CHECKING:
    from flowsignals.core.links import ApprovalLink, LinkDecision

__all__ = [
    "DECISION_INDEX",
    "SIGNAL_INDEX",
    "DynamoDBFlowSignalStore",
    "answer_within",
    "default_client",
]

# Local: read strongly consistently by every decision. Global: lists one signal's waiters.
DECISION_INDEX = "RunId-SignalName-local-index"
SIGNAL_INDEX = "RunId-SignalName-index"
DEFAULT_RETENTION = timedelta(days=7)
# BatchGetItem takes at most this many keys a call; keys it leaves unprocessed (16 MB a
# call, or throttled) are asked for again, this many calls at most.
_BATCH_GET_KEYS = 100
_MAX_BATCH_ROUNDS = 8

# A register races only a delivery or a removal of its own row: a few rounds settle it.
_MAX_REGISTER_ROUNDS = 16
# A delivery reads again only after every waiter it saw was taken by other deliveries, so each
# round means others made progress; this bounds a run that keeps gaining waiters meanwhile.
_MAX_DELIVERY_ROUNDS = 64
# A hand-over transaction that met another transaction on its rows is tried again this often.
_MAX_TRANSACTION_CONFLICTS = 8
# Concurrent approvals of one waiter each make another approval plan again: one round each,
# at most, as the approvals it can meet are the quorum's (10 at most) and a delivery.
_MAX_APPROVAL_ROUNDS = 16


class _HandOver(Enum):
    """How handing a buffered signal to a waiter ended."""

    DONE = "done"
    SIGNAL_TAKEN = "signal taken"  # consumed by someone else, or past its deadline
    WAITER_TAKEN = "waiter taken"  # delivered meanwhile, renamed, expired or removed


class DynamoDBFlowSignalStore:
    """A ``FlowSignalStore`` (and ``ApprovalLinkStore``) on the table of ``template.yaml``."""

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
        refuse_late_attempts(self._client)

    # --- operations -------------------------------------------------------------------

    def register_waiter(
        self,
        run_id: UUID | str,
        step_key: str,
        signal_name: str,
        expires_at: datetime | None = None,
        *,
        task_token: str | None = None,
        keep_task_token: bool = False,
        deciders: Sequence[str] | None = None,
        quorum: int = 1,
    ) -> FlowSignalWaiter:
        arguments = check_registration(
            run_id,
            step_key,
            signal_name,
            expires_at,
            task_token,
            keep_task_token,
            deciders,
            quorum,
        )
        now = read_clock(self._clock)
        waiter = self._write_registration(arguments, now)
        return self._receive_buffered(waiter, now) if waiter.can_receive(now) else waiter

    def deliver_signal(
        self,
        run_id: UUID | str,
        signal_name: str,
        payload_json: str | None = None,
        *,
        failure: SignalFailure | None = None,
        idempotency_key: str | None = None,
        delivered_by: str | None = None,
        buffer_for: timedelta | None = None,
        caller_identities: Sequence[str] | None = None,
    ) -> SignalDeliveryResult:
        delivery = check_delivery(
            run_id,
            signal_name,
            payload_json,
            failure,
            idempotency_key,
            delivered_by,
            buffer_for,
            caller_identities,
        )
        run, name, key = delivery.run_id, delivery.signal_name, delivery.idempotency_key
        attempt = uuid.uuid4().hex
        # The receivers come from a strongly consistent read of the signal's waiters (the
        # local index), never from the global index: an index that lags could hide an older
        # waiter. Concurrent deliveries read the same receivers; each loser of a conditional
        # write moves on to the next receiver it read, so N deliveries spread over N waiters
        # in one round. (Always the next, never a later one: skipping could leave an older
        # waiter behind.)
        for _ in range(_MAX_DELIVERY_ROUNDS):
            now = read_clock(self._clock)
            ordered = self._matching_waiters(run, name)
            replay = replay_of(ordered, key) or approval_replay(ordered, delivery, now)
            if replay is not None:
                return replay
            mine = allowed(ordered, delivery)
            receivers = can_receive(mine, now)
            if delivery.buffer_for is not None and key is not None:
                twin = self._buffered_twin(delivery, now)
                if twin is not None:  # this signal was buffered by an earlier try
                    answer = self._hand_over_twin(twin, receivers, now)
                    if answer is None:
                        continue  # a registration took it meanwhile: the next read says so
                    return answer
            if not receivers:
                if delivery.buffer_for is None:
                    return undeliverable(mine, now)
                return self._buffer(delivery, attempt, now)
            for receiver in receivers:
                answer = self._decide(receiver, delivery, attempt, now)
                if answer is not None:
                    return answer
        raise StoreUnavailable("deliver_signal kept finding the run's waiters taken")

    def _decide(
        self, receiver: FlowSignalWaiter, delivery: Delivery, attempt: str, now: datetime
    ) -> SignalDeliveryResult | None:
        """Deliver to (or approve) one receiver; None when it can no longer take this
        caller's signal (delivered, renamed, expired, removed, or its deciders changed)."""
        waiter, key = receiver, delivery.idempotency_key
        for _ in range(_MAX_APPROVAL_ROUNDS):
            step = step_for(waiter, delivery)
            try:
                # Atomic: one conditional UpdateItem. Its condition holds the decision's
                # every premise (undelivered, the name, the deadline, the caller among the
                # deciders, the quorum and the approvals counted), so exactly one of any
                # number of concurrent deliveries writes, and a concurrent register that
                # changed who decides makes it fail; the losers get the row back.
                written = self._call(
                    "update_item",
                    Key=items.key(waiter.run_id, waiter.step_key),
                    ReturnValues="UPDATED_NEW",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                    **self._decision_update(delivery, step, attempt, now),
                )
            except ConditionFailed as failed:
                old = failed.old
                if old is None:
                    return None  # removed
                if old.get("DeliveryId") == items.s(attempt):
                    return delivered(waiter.step_key, now)  # our write; its answer lost
                waiter = items.waiter_from_item(old)
                if key is not None and waiter.is_delivered and waiter.idempotency_key == key:
                    return replayed(waiter)  # a retry with our key won
                again = approval_replay([waiter], delivery, now)
                if again is not None:
                    return again
                if not (
                    waiter.signal_name == delivery.signal_name
                    and waiter.can_receive(now)
                    and waiter.may_be_decided_by(delivery.identities)
                ):
                    return None
                continue  # approvals or the quorum changed: plan again on the row as it is
            if step.action is Action.APPROVE:
                # The approvals counted now, concurrent ones included.
                approved_by = frozenset(written["Attributes"]["ApprovedBy"]["SS"])
                return pending(waiter.model_copy(update={"approved_by": approved_by}))
            return delivered(waiter.step_key, now)
        raise StoreUnavailable("deliver_signal kept meeting other approvals of one waiter")

    def get_waiter(self, run_id: UUID | str, step_key: str) -> FlowSignalWaiter | None:
        waiter = check_waiter_key(run_id, step_key)
        return self._read_waiter(waiter.run_id, waiter.step_key)

    def remove_waiter(self, run_id: UUID | str, step_key: str) -> None:
        waiter = check_waiter_key(run_id, step_key)
        self._call("delete_item", Key=items.key(waiter.run_id, waiter.step_key))

    def list_waiters(
        self, run_id: UUID | str, *, signal_name: str | None = None
    ) -> list[FlowSignalWaiter]:
        if signal_name is None:
            return oldest_first(self._run_waiters(check_run(run_id)))
        signal = check_signal(run_id, signal_name)
        listed = self._listed_positions(signal.run_id, signal.signal_name, None)
        return self._fetch_listed(signal.run_id, signal.signal_name, listed, len(listed))

    def list_waiters_page(
        self,
        run_id: UUID | str,
        *,
        limit: int,
        after: WaiterPosition | None = None,
        signal_name: str | None = None,
    ) -> list[FlowSignalWaiter]:
        page = check_page(run_id, limit, after, signal_name)
        if page.signal_name is not None:
            listed = self._listed_positions(page.run_id, page.signal_name, page.after)
            return self._fetch_listed(page.run_id, page.signal_name, listed, page.limit)
        following = (
            waiter
            for waiter in self._run_waiters(page.run_id)
            if page.after is None or waiter.position > page.after
        )
        # The partition is read in key order, 1 MB at a time; only the page is kept.
        return heapq.nsmallest(page.limit, following, key=lambda waiter: waiter.position)

    def signal_waiters(self, run_id: UUID | str, signal_name: str) -> list[FlowSignalWaiter]:
        signal = check_signal(run_id, signal_name)
        return self._matching_waiters(signal.run_id, signal.signal_name)

    def list_buffered_signals(self, run_id: UUID | str) -> list[BufferedSignal]:
        run = check_run(run_id)
        now = read_clock(self._clock)
        return [items.buffered_from_item(item) for item in self._buffered_items(run, None, now)]

    def save_link(self, link: ApprovalLink) -> None:
        # A link id is 128 random bits: the condition only guards against ever overwriting.
        self._call(
            "put_item",
            Item=items.link_item(link, self._ttl_value(link.expires_at)),
            ConditionExpression="attribute_not_exists(StepKey)",
        )

    def get_link(self, link_id: str) -> ApprovalLink | None:
        response = self._call("get_item", Key=items.link_key(link_id), ConsistentRead=True)
        item = response.get("Item")
        return None if item is None else items.link_from_item(item)

    def record_decision(self, link_id: str, decision: LinkDecision) -> LinkDecision:
        # Atomic: one conditional UpdateItem; of concurrent clicks, the first one's stays and
        # the others get the row back with it.
        try:
            self._call(
                "update_item",
                Key=items.link_key(link_id),
                UpdateExpression=expressions.RECORD_DECISION,
                ConditionExpression=expressions.UNDECIDED_LINK,
                ExpressionAttributeValues={":decision": items.s(decision.model_dump_json())},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ConditionFailed as failed:
            kept = None if failed.old is None else items.link_from_item(failed.old).decision
            if kept is None:
                raise FlowSignalError(f"approval link {link_id} is gone") from None
            return kept
        return decision

    # --- registering ------------------------------------------------------------------

    def _write_registration(self, arguments: Registration, now: datetime) -> FlowSignalWaiter:
        # Atomic: one conditional UpdateItem per attempt. The first assumes the row is new
        # or undelivered (it owns Ttl then); if a delivery got there first, the second
        # leaves Ttl as the tombstone's. A row removed in between starts over.
        for _ in range(_MAX_REGISTER_ROUNDS):
            for already_delivered in (False, True):
                try:
                    response = self._call(
                        "update_item",
                        Key=items.key(arguments.run_id, arguments.step_key),
                        ReturnValues="ALL_NEW",
                        **expressions.register_update(
                            arguments, now, already_delivered, self._deadline_ttl(arguments)
                        ),
                    )
                except ConditionFailed:
                    continue
                return items.waiter_from_item(response["Attributes"])
        raise StoreUnavailable("register_waiter kept racing other writers of the waiter")

    # --- early signals ----------------------------------------------------------------
    #
    # A delivery with buffer_for that finds no receiver writes a buffered row, then reads the
    # run's waiters again; a registration writes its waiter, then reads the run's buffered
    # rows. Both reads are strongly consistent, so whichever side writes second sees the
    # other's row: the two can never both miss, and leave a buffered signal and a waiting
    # waiter of one name behind. Either side then hands the signal over in one transaction
    # that deletes the buffered row (if it still exists and is before its deadline) and
    # delivers the waiter (if it can still receive): when both sides try, one transaction
    # applies and the other is canceled, so the signal is delivered exactly once.

    def _buffer(self, delivery: Delivery, attempt: str, now: datetime) -> SignalDeliveryResult:
        assert delivery.buffer_for is not None
        run, until = delivery.run_id, now + delivery.buffer_for
        item = items.buffered_item(run, delivery, attempt, now, until, self._ttl_value(until))
        try:
            self._call(
                "put_item",
                Item=item,
                ConditionExpression=expressions.BUFFER_FREE,
                ExpressionAttributeValues={":now": items.s(format_timestamp(now))},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ConditionFailed as failed:
            old = failed.old or {}
            if old.get("DeliveryId") != items.s(attempt):  # not our own write, answered late
                return buffered(items.buffered_from_item(old).buffered_until, replayed=True)
        try:
            return self._offer_buffered(item, delivery, until, now)
        except StoreUnavailable:
            self._withdraw(item)  # raises StoreUnavailable again once nothing is stored
            # Still stored (or already taken by a registration): it was buffered, and a
            # retry would buffer another copy.
            return buffered(until)

    def _offer_buffered(
        self, item: dict[str, Any], delivery: Delivery, until: datetime, now: datetime
    ) -> SignalDeliveryResult:
        """Read again: a waiter registered since the first read takes the signal now."""
        receivers = can_receive(self._matching_waiters(delivery.run_id, delivery.signal_name), now)
        for receiver in early_receivers(receivers, delivery):
            outcome = self._hand_over(item, receiver, now)
            if outcome is _HandOver.DONE:
                return delivered(receiver.step_key, now)
            if outcome is _HandOver.SIGNAL_TAKEN:
                break  # a registration took it first
        return buffered(until)

    def _withdraw(self, item: dict[str, Any]) -> None:
        """Delete a buffered row that could not be offered to the waiters registered since
        it was written, then raise StoreUnavailable: the delivery stored nothing, and its
        retry (a new delivery, keyless or not) does it all again. Returns when the row could
        not be deleted, or a registration took it meanwhile."""
        try:
            # Atomic: one conditional DeleteItem, of this attempt's row only.
            self._call(
                "delete_item",
                Key=items.key_of(item),
                ConditionExpression=expressions.OWN_ATTEMPT,
                ExpressionAttributeValues={":attempt": item["DeliveryId"]},
            )
        except (ConditionFailed, StoreUnavailable):
            return
        raise StoreUnavailable(
            "deliver_signal could not offer its early signal to the waiters: nothing was stored"
        )

    def _buffered_twin(self, delivery: Delivery, now: datetime) -> dict[str, Any] | None:
        """The live buffered row an earlier try with the same key wrote, if any."""
        step_key = items.buffered_key(delivery.signal_name, delivery.idempotency_key, "")
        response = self._call(
            "get_item", Key=items.key(delivery.run_id, step_key), ConsistentRead=True
        )
        twin = response.get("Item")
        if twin is None or items.buffered_from_item(twin).buffered_until <= now:
            return None
        return dict(twin)

    def _hand_over_twin(
        self, twin: dict[str, Any], receivers: list[FlowSignalWaiter], now: datetime
    ) -> SignalDeliveryResult | None:
        """A retry finds its signal still buffered: it goes to a waiter that can take it now
        (the earlier try may have stopped before it read the waiters again), else it waits.
        None when someone else took it meanwhile."""
        sender = items.delivery_of_buffered(twin["RunId"]["S"], twin)
        for receiver in early_receivers(receivers, sender):
            outcome = self._hand_over(twin, receiver, now)
            if outcome is _HandOver.DONE:
                return delivered(receiver.step_key, now).model_copy(update={"replayed": True})
            if outcome is _HandOver.SIGNAL_TAKEN:
                return None
        return buffered(items.buffered_from_item(twin).buffered_until, replayed=True)

    def _receive_buffered(self, waiter: FlowSignalWaiter, now: datetime) -> FlowSignalWaiter:
        taken = False
        for item in self._buffered_items(waiter.run_id, waiter.signal_name, now):
            sender = items.delivery_of_buffered(waiter.run_id, item)
            if not early_receivers([waiter], sender):
                continue  # its sender may not decide this waiter: it stays for another
            outcome = self._hand_over(item, waiter, now)
            if outcome is _HandOver.DONE:
                delivery = items.delivery_of_buffered(waiter.run_id, item)
                return with_delivery(waiter, delivery, now)
            if outcome is _HandOver.WAITER_TAKEN:  # a delivery got there first
                return self._read_waiter(waiter.run_id, waiter.step_key) or waiter
            # Taken by another registration, perhaps of this very step: the answer is the
            # row as stored, never the one this registration wrote.
            taken = True
        if taken:
            return self._read_waiter(waiter.run_id, waiter.step_key) or waiter
        return waiter

    def _hand_over(
        self, item: dict[str, Any], waiter: FlowSignalWaiter, now: datetime
    ) -> _HandOver:
        delivery = items.delivery_of_buffered(waiter.run_id, item)
        # Handed over whole, as its sender asked: to a waiter they may decide, of quorum one.
        step = Step(Action.DELIVER, quorum=1, approved=0)
        attempt = item["DeliveryId"]["S"]
        update = self._decision_update(delivery, step, attempt, now, quorum_of_one=True)
        # Atomic: one transaction consumes the buffered row and delivers the waiter, or
        # neither (see the protocol above).
        transaction = [
            {
                "Delete": {
                    "TableName": self._table_name,
                    "Key": items.key_of(item),
                    "ConditionExpression": expressions.STILL_BUFFERED,
                    "ExpressionAttributeValues": {":now": items.s(format_timestamp(now))},
                }
            },
            {
                "Update": {
                    "TableName": self._table_name,
                    "Key": items.key(waiter.run_id, waiter.step_key),
                    **update,
                }
            },
        ]
        for _ in range(_MAX_TRANSACTION_CONFLICTS):
            try:
                call(self._client, "transact_write_items", TransactItems=transaction)
            except TransactionCanceled as canceled:
                signal_reason, waiter_reason = canceled.reasons
                if signal_reason == "ConditionalCheckFailed":
                    return _HandOver.SIGNAL_TAKEN
                if waiter_reason == "ConditionalCheckFailed":
                    return _HandOver.WAITER_TAKEN
                continue  # another transaction held a row: try again
            return _HandOver.DONE
        raise StoreUnavailable("handing a buffered signal over kept meeting other transactions")

    def _buffered_items(self, run: str, name: str | None, now: datetime) -> list[dict[str, Any]]:
        """The run's buffered rows (of one name) before their deadline, oldest first."""
        found = self._query(
            KeyConditionExpression=expressions.BUFFERED,
            ExpressionAttributeValues={
                ":run_id": items.s(run),
                ":prefix": items.s(items.buffered_prefix(name)),
            },
            ConsistentRead=True,
        )
        live = [i for i in found if items.buffered_from_item(i).buffered_until > now]
        return sorted(live, key=items.buffered_order)

    # --- building blocks --------------------------------------------------------------

    def _ttl_value(self, instant: datetime) -> int:
        return int(instant.timestamp()) + self._retention_seconds

    def _ttl(self, instant: datetime) -> dict[str, str]:
        return items.n(self._ttl_value(instant))

    def _deadline_ttl(self, arguments: Registration) -> dict[str, str] | None:
        deadline = arguments.expires_at
        return None if deadline is None else self._ttl(deadline)

    def _decision_update(
        self, delivery: Delivery, step: Step, attempt: str, now: datetime, **flags: bool
    ) -> dict[str, Any]:
        return expressions.decision_update(delivery, step, attempt, now, self._ttl(now), **flags)

    def _read_waiter(self, run: str, step_key: str) -> FlowSignalWaiter | None:
        response = self._call("get_item", Key=items.key(run, step_key), ConsistentRead=True)
        item = response.get("Item")
        return None if item is None else items.waiter_from_item(item)

    def _matching_waiters(self, run: str, name: str) -> list[FlowSignalWaiter]:
        """The run's waiters of that signal name, strongly consistent, oldest first: the
        local index's entries, which hold what the rule reads and no payload, so the read
        costs what the run holds of that name only."""
        found = self._query(
            IndexName=DECISION_INDEX,
            KeyConditionExpression=expressions.OF_SIGNAL,
            Select="ALL_PROJECTED_ATTRIBUTES",
            ExpressionAttributeValues={":run_id": items.s(run), ":signal_name": items.s(name)},
            ConsistentRead=True,
        )
        return oldest_first(items.waiter_from_item(item) for item in found)

    # --- listing one signal's waiters (the global index: eventually consistent) ---------

    def _listed_positions(
        self, run: str, name: str, after: WaiterPosition | None
    ) -> list[WaiterPosition]:
        """Where the index lists the run's waiters of that name (after ``after``), oldest
        first. Its entries are keys and ``CreatedAt``: small, whatever the payloads."""
        found = self._query(
            IndexName=SIGNAL_INDEX,
            KeyConditionExpression=expressions.OF_SIGNAL,
            ExpressionAttributeValues={":run_id": items.s(run), ":signal_name": items.s(name)},
        )
        positions = ((parse_timestamp(i["CreatedAt"]["S"]), i["StepKey"]["S"]) for i in found)
        return sorted(p for p in positions if after is None or p > after)

    def _fetch_listed(
        self, run: str, name: str, listed: list[WaiterPosition], limit: int
    ) -> list[FlowSignalWaiter]:
        """The first ``limit`` listed waiters that still carry the name, read whole (one
        the index still lists though it was removed or renamed is passed over)."""
        found: list[FlowSignalWaiter] = []
        pending = [step_key for _, step_key in listed]
        while pending and len(found) < limit:
            wanted, pending = pending[: limit - len(found)], pending[limit - len(found) :]
            found += [w for w in self._batch_get(run, wanted) if w.signal_name == name]
        return oldest_first(found)

    def _batch_get(self, run: str, step_keys: list[str]) -> list[FlowSignalWaiter]:
        waiters = []
        for start in range(0, len(step_keys), _BATCH_GET_KEYS):
            keys = [items.key(run, k) for k in step_keys[start : start + _BATCH_GET_KEYS]]
            request: dict[str, Any] = {self._table_name: {"Keys": keys}}
            for attempt in range(_MAX_BATCH_ROUNDS):
                answer = call(self._client, "batch_get_item", RequestItems=request)
                rows = answer.get("Responses", {}).get(self._table_name, [])
                waiters += [items.waiter_from_item(row) for row in rows]
                # A call returns at most 16 MB, and less when throttled: the rest comes back.
                request = answer.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(0.05 * 2**attempt)
            else:
                raise StoreUnavailable("BatchGetItem kept leaving keys unprocessed")
        return waiters

    def _run_waiters(self, run: str) -> Iterator[FlowSignalWaiter]:
        found = self._query(
            KeyConditionExpression=expressions.WAITERS,
            ExpressionAttributeValues={
                ":run_id": items.s(run),
                ":first_step_key": items.s(items.FIRST_STEP_KEY),
            },
            ConsistentRead=True,
        )
        return (items.waiter_from_item(item) for item in found)

    def _query(self, **params: Any) -> Iterator[dict[str, Any]]:
        """Every item of a query, page after page (a page stops at 1 MB)."""
        while True:
            page = self._call("query", **params)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            params = {**params, "ExclusiveStartKey": page["LastEvaluatedKey"]}

    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        return call(self._client, operation, TableName=self._table_name, **params)
