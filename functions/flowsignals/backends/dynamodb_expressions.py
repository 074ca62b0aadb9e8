"""Each DynamoDB expression the store writes with, once: key conditions, and the conditional
updates that register a waiter and decide one (deliver, approve, complete a quorum). Every
premise of a decision is in its condition, so a write never lands on a row that changed
since it was read."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flowsignals.backends import dynamodb_items as items
from flowsignals.core.arguments import Delivery, Registration
from flowsignals.core.decisions import Action, Step, approval_of
from flowsignals.core.values import format_timestamp

WAITERS = "RunId = :run_id AND StepKey >= :first_step_key"
OF_SIGNAL = "RunId = :run_id AND SignalName = :signal_name"
BUFFERED = "RunId = :run_id AND begins_with(StepKey, :prefix)"
# A buffered signal is new, or its key's earlier one has passed its deadline.
BUFFER_FREE = "attribute_not_exists(StepKey) OR BufferedUntil <= :now"
STILL_BUFFERED = "attribute_exists(StepKey) AND BufferedUntil > :now"
# The row this delivery attempt wrote (it withdraws only its own).
OWN_ATTEMPT = "DeliveryId = :attempt"
# A link set's first decision, kept on its row (which must still exist).
RECORD_DECISION = "SET DecisionJson = :decision"
UNDECIDED_LINK = "attribute_exists(LinkJson) AND attribute_not_exists(DecisionJson)"
_UNDELIVERED = "attribute_not_exists(DeliveredAt)"
_DELIVERED = "attribute_exists(DeliveredAt)"
# SignalName = :signal_name is false on a missing row, so a delivery never creates one.
_DELIVERABLE = (
    "attribute_not_exists(DeliveredAt) AND SignalName = :signal_name"
    " AND (attribute_not_exists(ExpiresAt) OR ExpiresAt > :now)"
)
# DeliveryId names the attempt that wrote the delivery: when DynamoDB applied a write whose
# answer was lost and botocore sent it again, the repeat finds its own id in the row.
_DELIVER = "DeliveredAt = :now, DeliveryId = :delivery_id, #ttl = :ttl"
# One more approval: its identity joins the set (so it counts once), its entry the list.
_APPROVE = "Approvals = list_append(if_not_exists(Approvals, :no_approvals), :approval)"
_APPROVED_BY = "ADD ApprovedBy :principal"
# The caller has not approved yet (false on a row without ApprovedBy, so NOT is true).
_NOT_APPROVED_YET = "NOT contains(ApprovedBy, :principal_text)"


def register_update(
    arguments: Registration, now: datetime, already_delivered: bool, ttl: dict[str, str] | None
) -> dict[str, Any]:
    """The conditional update that registers a waiter: assuming the row is new or
    undelivered (it then owns ``CreatedAt`` and ``Ttl``, ``ttl`` being its deadline's, None
    without one), or, with ``already_delivered``, that a delivery got there first."""
    deadline, token = arguments.expires_at, arguments.task_token
    sets = ["SignalName = :signal_name"]
    removes = []
    values: dict[str, Any] = {":signal_name": items.s(arguments.signal_name)}
    if deadline is None:
        removes.append("ExpiresAt")
    else:
        sets.append("ExpiresAt = :expires_at")
        values[":expires_at"] = items.s(format_timestamp(deadline))
    if token is not None:
        sets.append("TaskToken = :task_token")
        values[":task_token"] = items.s(token)
    elif not arguments.keep_task_token:
        removes.append("TaskToken")
    # Who decides: absent means anyone (Deciders) and one approval (QuorumSize).
    if arguments.who_decides:
        sets.append("Deciders = :deciders")
        values[":deciders"] = items.strings(arguments.who_decides)
    else:
        removes.append("Deciders")
    if arguments.quorum > 1:
        sets.append("QuorumSize = :quorum")
        values[":quorum"] = items.n(arguments.quorum)
    else:
        removes.append("QuorumSize")
    if not already_delivered:
        sets.append("CreatedAt = if_not_exists(CreatedAt, :now)")
        values[":now"] = items.s(format_timestamp(now))
        # An undelivered row lives until its deadline + retention, or forever.
        if ttl is None:
            removes.append("#ttl")
        else:
            sets.append("#ttl = :ttl")
            values[":ttl"] = ttl
    update = f"SET {', '.join(sets)}"
    if removes:
        update += f" REMOVE {', '.join(removes)}"
    params: dict[str, Any] = {
        "UpdateExpression": update,
        "ConditionExpression": _DELIVERED if already_delivered else _UNDELIVERED,
        "ExpressionAttributeValues": values,
    }
    if "#ttl" in update:
        params["ExpressionAttributeNames"] = items.TTL_NAME
    return params


def _may_decide(identities: tuple[str, ...]) -> tuple[str, dict[str, Any]]:
    """The condition that a caller with ``identities`` may decide the row, as
    ``FlowSignalWaiter.may_be_decided_by`` says it."""
    if not identities:
        return "attribute_not_exists(Deciders) AND attribute_not_exists(QuorumSize)", {}
    names = [f":identity{index}" for index in range(len(identities))]
    terms = " OR ".join(f"contains(Deciders, {name})" for name in names)
    values = {name: items.s(identity) for name, identity in zip(names, identities, strict=True)}
    return f"(attribute_not_exists(Deciders) OR {terms})", values


def decision_update(
    delivery: Delivery,
    step: Step,
    attempt: str,
    now: datetime,
    ttl: dict[str, str],
    *,
    quorum_of_one: bool = False,
) -> dict[str, Any]:
    """The conditional update that carries out ``step`` on a waiter that can still take the
    caller's signal: delivers it, or adds the caller's approval (and, completing a quorum,
    delivers). ``ttl`` is the tombstone's; ``quorum_of_one`` requires a waiter without a
    quorum (an early signal is handed to such a waiter only)."""
    allowed, values = _may_decide(delivery.identities)
    conditions = [_DELIVERABLE, allowed]
    values |= {
        ":signal_name": items.s(delivery.signal_name),
        ":now": items.s(format_timestamp(now)),
    }
    sets: list[str] = []
    adds: list[str] = []
    if step.action is not Action.APPROVE:
        content, content_values = items.set_clause(items.content(delivery))
        sets += [_DELIVER, content]  # a payload or a failure, always
        values |= content_values | {":delivery_id": items.s(attempt), ":ttl": ttl}
    if delivery.principal is not None:
        # A caller whose approval the row holds is answered a replay, never counted again.
        conditions.append(_NOT_APPROVED_YET)
        values[":principal_text"] = items.s(delivery.principal)
    if step.action is Action.DELIVER:
        if delivery.failure is None or quorum_of_one:
            conditions.append("attribute_not_exists(QuorumSize)")  # planned as a quorum of one
    else:
        assert delivery.principal is not None
        conditions.append("QuorumSize = :quorum")
        values[":quorum"] = items.n(step.quorum)
        if step.action is Action.APPROVE:  # the quorum stays out of reach
            conditions.append("(attribute_not_exists(ApprovedBy) OR size(ApprovedBy) < :short)")
            values[":short"] = items.n(step.quorum - 1)
        else:  # exactly the approvals it was planned on: this one completes the quorum
            conditions.append("size(ApprovedBy) = :approved")
            values[":approved"] = items.n(step.approved)
        sets.append(_APPROVE)
        adds.append(_APPROVED_BY)
        values |= {
            ":no_approvals": {"L": []},
            ":approval": {"L": [items.approval_entry(approval_of(delivery, now))]},
            ":principal": {"SS": [delivery.principal]},
        }
    update = f"SET {', '.join(sets)}" + (f" {' '.join(adds)}" if adds else "")
    params: dict[str, Any] = {
        "UpdateExpression": update,
        # Each term is safe to join: an OR stands in parentheses (DynamoDB refuses more).
        "ConditionExpression": " AND ".join(conditions),
        "ExpressionAttributeValues": values,
    }
    if "#ttl" in update:
        params["ExpressionAttributeNames"] = items.TTL_NAME
    return params
