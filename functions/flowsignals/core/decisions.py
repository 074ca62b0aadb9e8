"""Who may decide, and quorums: the part of the delivery rule that looks at the caller. Pure,
like the rest of the rule (``store``); every backend applies it, the DynamoDB one inside its
conditional writes.

A waiter may name its deciders (``kind:value`` entries) and a quorum. A caller may decide it
when one of its identities is among the deciders, or when none are named (a quorum then
needs a caller who says who it is). Its *principal*, the first identity it gives, names it
among a quorum's approvers: a quorum is that many distinct principals. A signal from a caller
whose approval a waiter already holds is a replay of that approval, whatever it carries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from flowsignals.core.arguments import Delivery
from flowsignals.core.errors import NotAllowedToDecide
from flowsignals.core.models import (
    Approval,
    FlowSignalWaiter,
    SignalDeliveryResult,
    SignalDeliveryStatus,
)
from flowsignals.core.store import delivered, replayed, with_delivery


class Action(Enum):
    """What a delivery does to the waiter that receives it."""

    DELIVER = "deliver"  # the payload or failure, at once (quorum 1, or a failure)
    APPROVE = "approve"  # one more approval; the quorum is not reached yet
    COMPLETE = "complete"  # the approval that reaches the quorum: delivered, with it


@dataclass(frozen=True)
class Step:
    """A delivery's plan for one receiver, and the state it was planned on, which the write
    must still find (a concurrent approval or register makes it plan again)."""

    action: Action
    quorum: int
    approved: int  # approvals the waiter held


def step_for(waiter: FlowSignalWaiter, delivery: Delivery) -> Step:
    approved = len(waiter.approved_by)
    if delivery.failure is not None or waiter.quorum == 1:
        action = Action.DELIVER
    elif approved + 1 >= waiter.quorum:
        action = Action.COMPLETE
    else:
        action = Action.APPROVE
    return Step(action, waiter.quorum, approved)


def allowed(ordered: list[FlowSignalWaiter], delivery: Delivery) -> list[FlowSignalWaiter]:
    """The waiters the caller may decide, in the order given; ``NotAllowedToDecide`` when
    there are waiters and it may decide none of them."""
    mine = [waiter for waiter in ordered if waiter.may_be_decided_by(delivery.identities)]
    if ordered and not mine:
        raise NotAllowedToDecide(
            "the caller may decide none of the run's waiters of this signal"
            " (its identities are not among their deciders)"
        )
    return mine


def approval_replay(
    ordered: list[FlowSignalWaiter], delivery: Delivery, now: datetime
) -> SignalDeliveryResult | None:
    """The caller already approved one of these waiters: its signal is a replay of that
    approval (``Pending`` while the quorum is not reached, ``Delivered`` once it is)."""
    principal = delivery.principal
    if principal is None:
        return None
    for waiter in ordered:
        if principal not in waiter.approved_by:
            continue
        if waiter.is_delivered:
            return replayed(waiter)
        if waiter.can_receive(now):
            return pending(waiter, replayed=True)
    return None


def pending(waiter: FlowSignalWaiter, *, replayed: bool = False) -> SignalDeliveryResult:
    return SignalDeliveryResult(
        status=SignalDeliveryStatus.PENDING,
        step_key=waiter.step_key,
        approvals=len(waiter.approved_by),
        quorum=waiter.quorum,
        replayed=replayed,
    )


def approval_of(delivery: Delivery, now: datetime) -> Approval:
    assert delivery.principal is not None and delivery.payload_json is not None
    return Approval(
        by=delivery.delivered_by or delivery.principal, at=now, payload_json=delivery.payload_json
    )


def decided(
    waiter: FlowSignalWaiter, delivery: Delivery, now: datetime
) -> tuple[FlowSignalWaiter, SignalDeliveryResult]:
    """The waiter as the delivery's step leaves it, and the answer."""
    step = step_for(waiter, delivery)
    if step.action is Action.DELIVER:
        return with_delivery(waiter, delivery, now), delivered(waiter.step_key, now)
    assert delivery.principal is not None
    approved = waiter.model_copy(
        update={
            "approvals": (*waiter.approvals, approval_of(delivery, now)),
            "approved_by": waiter.approved_by | {delivery.principal},
        }
    )
    if step.action is Action.APPROVE:
        return approved, pending(approved)
    return with_delivery(approved, delivery, now), delivered(waiter.step_key, now)


def early_receivers(receivers: list[FlowSignalWaiter], sender: Delivery) -> list[FlowSignalWaiter]:
    """The waiters an early (buffered) signal may be handed to: those its sender may decide,
    that need no quorum (a quorum gathers its approvals from deliveries made while it waits)."""
    return [w for w in receivers if w.quorum == 1 and w.may_be_decided_by(sender.identities)]
