"""The store contract, and the delivery rule every backend applies."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Protocol
from uuid import UUID

from flowsignals.core.arguments import Delivery
from flowsignals.core.models import (
    BufferedSignal,
    FlowSignalWaiter,
    SignalDeliveryResult,
    SignalDeliveryStatus,
    SignalFailure,
)
from flowsignals.core.values import to_utc_ms

Clock = Callable[[], datetime]
# Where a waiter stands in "oldest first": (created_at, step_key). A page of a run's waiters
# starts after one.
WaiterPosition = tuple[datetime, str]


class FlowSignalStore(Protocol):
    """Waiters parked by workflow runs, and the signals that resume them.

    ``run_id`` is the orchestrator's id of its run: a ``UUID`` in any spelling is one run
    (kept as its lowercase hyphenated form), any other string is kept as given. Every
    timestamp is UTC, truncated to the millisecond. Bad input raises ``InvalidSignalRequest``
    (a subclass of ``ValueError``) naming the argument, before anything is written.
    """

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
        """Create the waiter for ``(run_id, step_key)``, or update it.

        A repeated register replaces ``signal_name``, ``expires_at`` (None removes it),
        ``task_token`` (unless ``keep_task_token``: then a stored token stays, as over HTTP,
        where no caller may hand one in or take one away), ``deciders`` and ``quorum``, and
        keeps ``created_at``, ``delivered_at``, the payload and the approvals given.
        ``deciders`` (up to 20 ``kind:value``: ``email:``, ``sub:``, ``group:``, ``iam:``;
        None or empty: anyone) say who may decide it; ``quorum`` (1-10, at most the deciders
        named) how many distinct ones must approve. A waiter that can receive (undelivered,
        not expired, quorum 1) and whose signal name has a buffered signal in the run, sent
        by a caller who may decide it, receives the oldest such one at once. Returns the
        stored waiter.
        """
        ...

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
        """Deliver ``payload_json`` — or ``failure``, exactly one of them — to one waiter of
        the run named ``signal_name``, exactly once, as the caller ``caller_identities``
        names (``kind:value``; the first names it among a quorum's approvers).

        A waiter already delivered with the same ``idempotency_key``, or holding this
        caller's approval, is answered again (``replayed=True``) and nothing is written.
        Otherwise the receivers are the waiters the caller may decide (none of several:
        ``NotAllowedToDecide``), and the oldest of them neither delivered nor expired
        receives it: delivered (``Delivered``), or, when it needs a quorum, approved
        (``Pending`` with ``approvals`` of ``quorum``, until the approval that reaches it
        delivers it; a failure delivers at once). When none can, with ``buffer_for`` the
        signal is kept for the run's next waiter of that name registered before ``now +
        buffer_for`` (``Buffered``; a retry with the same key keeps one, answered
        ``replayed=True``); without it the answer is ``AlreadyDelivered`` (oldest delivered
        waiter), ``Expired`` (oldest expired waiter) or ``NotFound``.
        """
        ...

    def list_buffered_signals(self, run_id: UUID | str) -> list[BufferedSignal]:
        """The run's buffered signals not yet consumed nor past their deadline, oldest first."""
        ...

    def get_waiter(self, run_id: UUID | str, step_key: str) -> FlowSignalWaiter | None:
        """The waiter, read-your-writes, or None."""
        ...

    def remove_waiter(self, run_id: UUID | str, step_key: str) -> None:
        """Delete the waiter; removing a missing waiter is not an error."""
        ...

    def list_waiters(
        self, run_id: UUID | str, *, signal_name: str | None = None
    ) -> list[FlowSignalWaiter]:
        """All waiters of the run, oldest first (``created_at``, then ``step_key``); with
        ``signal_name``, those of that name only.

        By name, the DynamoDB store reads the index ``RunId-SignalName-index``, which is
        eventually consistent: a waiter registered or renamed a moment ago may be missing
        (never listed under a name it no longer has). No delivery decides on it.
        """
        ...

    def list_waiters_page(
        self,
        run_id: UUID | str,
        *,
        limit: int,
        after: WaiterPosition | None = None,
        signal_name: str | None = None,
    ) -> list[FlowSignalWaiter]:
        """At most ``limit`` waiters of the run (of ``signal_name`` only, when given, as
        ``list_waiters`` reads them), oldest first, from those that come after ``after`` (a
        waiter's ``position``) or from the oldest."""
        ...

    def signal_waiters(self, run_id: UUID | str, signal_name: str) -> list[FlowSignalWaiter]:
        """The run's waiters of ``signal_name``, oldest first, as a delivery reads them:
        strongly consistent, and only what the delivery rule needs. Their ``payload_json``,
        ``failure``, ``delivered_by`` and ``task_token`` are None and their ``approvals``
        empty (``approved_by`` is there; ``get_waiter`` has the rest):
        reading them costs what the run holds of that name, never more."""
        ...


def system_clock() -> datetime:
    return datetime.now(UTC)


def read_clock(clock: Clock) -> datetime:
    """The clock's instant as the store keeps it: UTC, whole milliseconds."""
    return to_utc_ms(clock())


# --- The delivery rule, on the waiters of one run that carry the signal name. -----------


def oldest_first(waiters: Iterable[FlowSignalWaiter]) -> list[FlowSignalWaiter]:
    return sorted(waiters, key=lambda waiter: waiter.position)


def as_the_rule_reads(waiter: FlowSignalWaiter) -> FlowSignalWaiter:
    """The waiter as ``signal_waiters`` returns it: what a delivery's decision reads."""
    return waiter.model_copy(
        update={
            "payload_json": None,
            "failure": None,
            "delivered_by": None,
            "task_token": None,
            "approvals": (),
        }
    )


def page_of(
    ordered: Iterable[FlowSignalWaiter], limit: int, after: WaiterPosition | None
) -> list[FlowSignalWaiter]:
    """The ``limit`` waiters that follow ``after`` in an oldest-first sequence."""
    following = (w for w in ordered if after is None or w.position > after)
    return [waiter for _, waiter in zip(range(limit), following, strict=False)]


def replay_of(
    ordered: list[FlowSignalWaiter], idempotency_key: str | None
) -> SignalDeliveryResult | None:
    """The earlier answer to a retried delivery: a waiter delivered with the same key."""
    if idempotency_key is None:
        return None
    for waiter in ordered:
        if waiter.is_delivered and waiter.idempotency_key == idempotency_key:
            return replayed(waiter)
    return None


def replayed(waiter: FlowSignalWaiter) -> SignalDeliveryResult:
    return SignalDeliveryResult(
        status=SignalDeliveryStatus.DELIVERED,
        step_key=waiter.step_key,
        delivered_at=waiter.delivered_at,
        replayed=True,
    )


def can_receive(ordered: list[FlowSignalWaiter], now: datetime) -> list[FlowSignalWaiter]:
    """The waiters a signal may be delivered to, in the order given."""
    return [waiter for waiter in ordered if waiter.can_receive(now)]


def next_receiver(ordered: list[FlowSignalWaiter], now: datetime) -> FlowSignalWaiter | None:
    """The oldest waiter that is neither delivered nor expired."""
    return next((waiter for waiter in ordered if waiter.can_receive(now)), None)


def with_delivery(waiter: FlowSignalWaiter, delivery: Delivery, now: datetime) -> FlowSignalWaiter:
    """The waiter as a delivery at ``now`` leaves it."""
    return waiter.model_copy(
        update={
            "delivered_at": now,
            "payload_json": delivery.payload_json,
            "failure": delivery.failure,
            "idempotency_key": delivery.idempotency_key,
            "delivered_by": delivery.delivered_by,
        }
    )


def buffered(until: datetime, *, replayed: bool = False) -> SignalDeliveryResult:
    return SignalDeliveryResult(
        status=SignalDeliveryStatus.BUFFERED, expires_at=until, replayed=replayed
    )


def delivered(step_key: str, delivered_at: datetime) -> SignalDeliveryResult:
    return SignalDeliveryResult(
        status=SignalDeliveryStatus.DELIVERED, step_key=step_key, delivered_at=delivered_at
    )


def undeliverable(ordered: list[FlowSignalWaiter], now: datetime) -> SignalDeliveryResult:
    """Why no waiter can receive the signal, when ``next_receiver`` found none."""
    for waiter in ordered:
        if waiter.is_delivered:
            return SignalDeliveryResult(
                status=SignalDeliveryStatus.ALREADY_DELIVERED,
                step_key=waiter.step_key,
                delivered_at=waiter.delivered_at,
            )
    for waiter in ordered:
        if waiter.is_expired(now):
            return SignalDeliveryResult(
                status=SignalDeliveryStatus.EXPIRED,
                step_key=waiter.step_key,
                expires_at=waiter.expires_at,
            )
    return SignalDeliveryResult(status=SignalDeliveryStatus.NOT_FOUND)
