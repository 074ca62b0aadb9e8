"""The table's rows as the store writes and reads them: one row per waiter, keyed
``RunId`` + ``StepKey``, and the run's buffered (early) signals in the same partition.

A buffered signal's sort key starts with a control character, which no step key may hold,
so it can never collide with a waiter's and every waiter query starts past it
(``StepKey >= " "``). It carries ``BufferedSignalName``, not ``SignalName``, so it is never in
the signal-name index nor matched as a waiter. Its name goes into the key as a hash: a
signal name may take 1 KB of UTF-8, as much as a whole sort key.

An approval link is a row of its own partition, ``"\x1flink\x1f" + link id``: no run id may
hold a control character, so it is never a run's, and its sort key marks it as no waiter for
the notifier (``NOT_A_WAITER_PREFIX``) either.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from flowsignals.backends.row_keys import NOT_A_WAITER_PREFIX
from flowsignals.core.arguments import Delivery
from flowsignals.core.models import Approval, BufferedSignal, FlowSignalWaiter, SignalFailure
from flowsignals.core.values import format_timestamp, parse_timestamp

if TYPE_CHECKING:  # links are read by the link functions only, and load their models then
    from flowsignals.core.links import ApprovalLink

TTL_ATTRIBUTE = "Ttl"
# "TTL" is a DynamoDB reserved word (case-insensitively), so Ttl goes by a placeholder.
TTL_NAME = {"#ttl": TTL_ATTRIBUTE}
# The lowest step key a waiter can have: step keys hold no control characters.
FIRST_STEP_KEY = " "
_BUFFERED = NOT_A_WAITER_PREFIX + "buffered\x1f"
_LINK_PARTITION = "\x1flink\x1f"
_LINK_SORT_KEY = NOT_A_WAITER_PREFIX + "link"


def s(value: str) -> dict[str, str]:
    return {"S": value}


def n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def key(run: str, step_key: str) -> dict[str, dict[str, str]]:
    return {"RunId": s(run), "StepKey": s(step_key)}


def key_of(item: dict[str, Any]) -> dict[str, dict[str, str]]:
    """The key of a row as read."""
    return {"RunId": item["RunId"], "StepKey": item["StepKey"]}


def text(item: dict[str, Any], name: str) -> str | None:
    return item[name]["S"] if name in item else None


def _instant(item: dict[str, Any], name: str) -> datetime | None:
    value = text(item, name)
    return None if value is None else parse_timestamp(value)


def _failure(item: dict[str, Any]) -> SignalFailure | None:
    error = text(item, "FailureError")
    return None if error is None else SignalFailure(error=error, cause=text(item, "FailureCause"))


def _approval(entry: dict[str, Any]) -> Approval:
    fields = entry["M"]
    return Approval.model_construct(
        by=fields["By"]["S"],
        at=parse_timestamp(fields["At"]["S"]),
        payload_json=fields["PayloadJson"]["S"],
    )


def approval_entry(approval: Approval) -> dict[str, Any]:
    """An approval as one entry of the row's ``Approvals`` list."""
    return {
        "M": {
            "By": s(approval.by),
            "At": s(format_timestamp(approval.at)),
            "PayloadJson": s(approval.payload_json),
        }
    }


def strings(values: Iterable[str]) -> dict[str, Any]:
    """A list of strings (``Deciders``, a buffered signal's ``CallerIdentities``)."""
    return {"L": [s(value) for value in values]}


def _strings(item: dict[str, Any], name: str) -> tuple[str, ...]:
    return tuple(value["S"] for value in item[name]["L"]) if name in item else ()


def waiter_from_item(item: dict[str, Any]) -> FlowSignalWaiter:
    # A row the store wrote, read back as it is, not validated again: a rule added later
    # never makes a stored row unreadable, and a delivery's reads cost no validation.
    return FlowSignalWaiter.model_construct(
        run_id=item["RunId"]["S"],
        step_key=item["StepKey"]["S"],
        signal_name=item["SignalName"]["S"],
        created_at=parse_timestamp(item["CreatedAt"]["S"]),
        expires_at=_instant(item, "ExpiresAt"),
        delivered_at=_instant(item, "DeliveredAt"),
        payload_json=text(item, "PayloadJson"),
        failure=_failure(item),
        delivered_by=text(item, "DeliveredBy"),
        idempotency_key=text(item, "IdempotencyKey"),
        task_token=text(item, "TaskToken"),
        deciders=_strings(item, "Deciders"),
        quorum=int(item["QuorumSize"]["N"]) if "QuorumSize" in item else 1,
        approvals=tuple(_approval(entry) for entry in item.get("Approvals", {}).get("L", [])),
        approved_by=frozenset(item["ApprovedBy"]["SS"]) if "ApprovedBy" in item else frozenset(),
    )


def content(delivery: Delivery) -> dict[str, dict[str, str]]:
    """What a delivery writes besides its time: the payload or the failure, and who, by key."""
    attributes: dict[str, dict[str, str]] = {}
    if delivery.payload_json is not None:
        attributes["PayloadJson"] = s(delivery.payload_json)
    if delivery.failure is not None:
        attributes["FailureError"] = s(delivery.failure.error)
        if delivery.failure.cause is not None:
            attributes["FailureCause"] = s(delivery.failure.cause)
    if delivery.idempotency_key is not None:
        attributes["IdempotencyKey"] = s(delivery.idempotency_key)
    if delivery.delivered_by is not None:
        attributes["DeliveredBy"] = s(delivery.delivered_by)
    return attributes


def set_clause(attributes: dict[str, dict[str, str]]) -> tuple[str, dict[str, Any]]:
    """``a = :a, b = :b`` and its values, for an UpdateExpression's SET."""
    return (
        ", ".join(f"{name} = :{name}" for name in attributes),
        {f":{name}": value for name, value in attributes.items()},
    )


# --- buffered signals ---------------------------------------------------------------------


def buffered_prefix(signal_name: str | None = None) -> str:
    """The sort-key prefix of the run's buffered signals (of one name, when given)."""
    if signal_name is None:
        return _BUFFERED
    return _BUFFERED + hashlib.sha256(signal_name.encode()).hexdigest()[:32] + "\x1f"


def buffered_key(signal_name: str, idempotency_key: str | None, attempt: str) -> str:
    # A keyed signal's key is its own, so a retry with that key meets the first one.
    suffix = f"k{idempotency_key}" if idempotency_key is not None else f"i{attempt}"
    return buffered_prefix(signal_name) + suffix


def buffered_item(
    run: str, delivery: Delivery, attempt: str, now: datetime, until: datetime, ttl: int
) -> dict[str, Any]:
    return {
        **key(run, buffered_key(delivery.signal_name, delivery.idempotency_key, attempt)),
        "BufferedSignalName": s(delivery.signal_name),
        "BufferedAt": s(format_timestamp(now)),
        "BufferedUntil": s(format_timestamp(until)),
        # Orders signals buffered within one millisecond as they came (nanoseconds).
        "BufferedSequence": n(time.time_ns()),
        "DeliveryId": s(attempt),
        TTL_ATTRIBUTE: n(ttl),
        **content(delivery),
        # Who sent it: a waiter receives it only if they may decide that waiter.
        **({"CallerIdentities": strings(delivery.identities)} if delivery.identities else {}),
    }


def buffered_from_item(item: dict[str, Any]) -> BufferedSignal:
    return BufferedSignal(
        signal_name=item["BufferedSignalName"]["S"],
        buffered_at=parse_timestamp(item["BufferedAt"]["S"]),
        buffered_until=parse_timestamp(item["BufferedUntil"]["S"]),
    )


def buffered_order(item: dict[str, Any]) -> tuple[str, int, str]:
    """Oldest first: the fixed-width timestamps sort as the instants do."""
    sequence = int(item["BufferedSequence"]["N"]) if "BufferedSequence" in item else 0
    return (item["BufferedAt"]["S"], sequence, item["StepKey"]["S"])


def delivery_of_buffered(run: str, item: dict[str, Any]) -> Delivery:
    """The delivery a buffered row keeps, as its waiter will receive it."""
    return Delivery(
        run_id=run,
        signal_name=item["BufferedSignalName"]["S"],
        payload_json=text(item, "PayloadJson"),
        failure=_failure(item),
        idempotency_key=text(item, "IdempotencyKey"),
        delivered_by=text(item, "DeliveredBy"),
        buffer_for=None,
        caller_identities=_strings(item, "CallerIdentities") or None,
    )


# --- approval links -----------------------------------------------------------------------


def link_key(link_id: str) -> dict[str, dict[str, str]]:
    return key(_LINK_PARTITION + link_id, _LINK_SORT_KEY)


def link_item(link: ApprovalLink, ttl: int) -> dict[str, Any]:
    return {
        **link_key(link.link_id),
        # The whole link as one JSON text: it is only ever read whole, by its id.
        "LinkJson": s(link.model_dump_json()),
        TTL_ATTRIBUTE: n(ttl),
    }


def link_from_item(item: dict[str, Any]) -> ApprovalLink:
    from flowsignals.core.links import ApprovalLink, LinkDecision

    link = ApprovalLink.model_validate_json(item["LinkJson"]["S"])
    if "DecisionJson" not in item:
        return link
    decision = LinkDecision.model_validate_json(item["DecisionJson"]["S"])
    return link.model_copy(update={"decision": decision})
