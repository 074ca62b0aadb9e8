"""The in-memory backend: process-local and thread-safe, for tests and local runs."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from flowsignals.core.arguments import (
    Delivery,
    check_delivery,
    check_page,
    check_registration,
    check_run,
    check_signal,
    check_waiter_key,
)
from flowsignals.core.decisions import allowed, approval_replay, decided, early_receivers
from flowsignals.core.links import ApprovalLink, LinkDecision
from flowsignals.core.models import (
    BufferedSignal,
    FlowSignalWaiter,
    SignalDeliveryResult,
    SignalFailure,
)
from flowsignals.core.store import (
    Clock,
    WaiterPosition,
    as_the_rule_reads,
    buffered,
    next_receiver,
    oldest_first,
    page_of,
    read_clock,
    replay_of,
    system_clock,
    undeliverable,
    with_delivery,
)


@dataclass(frozen=True)
class _Buffered:
    """An early signal: the delivery as it was asked, kept from ``at`` until ``until``."""

    delivery: Delivery
    at: datetime
    until: datetime

    @property
    def key(self) -> str | None:
        return self.delivery.idempotency_key


class InMemoryFlowSignalStore:
    """A ``FlowSignalStore`` (and ``ApprovalLinkStore``) in a dict. Waiters are immutable, so
    returning them is safe."""

    def __init__(self, *, clock: Clock | None = None) -> None:
        self._clock = clock or system_clock
        self._lock = threading.Lock()
        self._runs: dict[str, dict[str, FlowSignalWaiter]] = {}
        self._buffered: dict[str, list[_Buffered]] = {}  # per run, oldest first
        self._links: dict[str, ApprovalLink] = {}

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
        run, key, name = arguments.run_id, arguments.step_key, arguments.signal_name
        deadline, token = arguments.expires_at, arguments.task_token
        deciders, quorum = arguments.who_decides, arguments.quorum
        # Atomic: the read of the existing waiter, the write, and the hand-over of a
        # buffered signal happen under one lock.
        with self._lock:
            now = read_clock(self._clock)
            waiters = self._runs.setdefault(run, {})
            existing = waiters.get(key)
            if existing is None:
                waiter = FlowSignalWaiter(
                    run_id=run,
                    step_key=key,
                    signal_name=name,
                    created_at=now,
                    expires_at=deadline,
                    task_token=token,
                    deciders=deciders,
                    quorum=quorum,
                )
            else:  # keeps created_at, the approvals and an earlier delivery
                if arguments.keep_task_token:
                    token = existing.task_token
                waiter = existing.model_copy(
                    update={"signal_name": name, "expires_at": deadline, "task_token": token}
                    | {"deciders": deciders, "quorum": quorum}
                )
            if waiter.can_receive(now):
                early = self._take_buffered(waiter, now)
                if early is not None:
                    waiter = with_delivery(waiter, early.delivery, now)
            waiters[key] = waiter
            return waiter

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
        # Atomic: choosing the receiver (or buffering) and marking it delivered (or approved)
        # happen under one lock, so no two deliveries can both see the same waiter undecided.
        with self._lock:
            now = read_clock(self._clock)
            waiters = self._runs.get(run, {})
            ordered = oldest_first(w for w in waiters.values() if w.signal_name == name)
            replay = replay_of(ordered, key) or approval_replay(ordered, delivery, now)
            if replay is not None:
                return replay
            mine = allowed(ordered, delivery)
            receiver = next_receiver(mine, now)
            if receiver is not None:
                waiters[receiver.step_key], answer = decided(receiver, delivery, now)
                return answer
            if delivery.buffer_for is None:
                return undeliverable(mine, now)
            live = self._live_buffered(run, now)
            same_key = next(
                (
                    b
                    for b in live
                    if key is not None and (b.key, b.delivery.signal_name) == (key, name)
                ),
                None,
            )
            if same_key is not None:
                return buffered(same_key.until, replayed=True)
            early = _Buffered(delivery, now, now + delivery.buffer_for)
            self._buffered[run] = [*live, early]
            return buffered(early.until)

    def list_buffered_signals(self, run_id: UUID | str) -> list[BufferedSignal]:
        run = check_run(run_id)
        with self._lock:
            live = self._live_buffered(run, read_clock(self._clock))
        return [
            BufferedSignal(
                signal_name=b.delivery.signal_name, buffered_at=b.at, buffered_until=b.until
            )
            for b in live
        ]

    def _live_buffered(self, run: str, now: datetime) -> list[_Buffered]:
        """The run's buffered signals before their deadline (the others are dropped)."""
        live = [b for b in self._buffered.get(run, []) if now < b.until]
        self._buffered[run] = live
        return live

    def _take_buffered(self, waiter: FlowSignalWaiter, now: datetime) -> _Buffered | None:
        """The oldest live buffered signal of the waiter's name whose sender may decide it."""
        live = self._live_buffered(waiter.run_id, now)
        early = next(
            (
                b
                for b in live
                if b.delivery.signal_name == waiter.signal_name
                and early_receivers([waiter], b.delivery)
            ),
            None,
        )
        if early is not None:
            live.remove(early)
        return early

    def get_waiter(self, run_id: UUID | str, step_key: str) -> FlowSignalWaiter | None:
        waiter = check_waiter_key(run_id, step_key)
        with self._lock:
            return self._runs.get(waiter.run_id, {}).get(waiter.step_key)

    def remove_waiter(self, run_id: UUID | str, step_key: str) -> None:
        waiter = check_waiter_key(run_id, step_key)
        with self._lock:
            waiters = self._runs.get(waiter.run_id, {})
            waiters.pop(waiter.step_key, None)
            if not waiters:
                self._runs.pop(waiter.run_id, None)

    def list_waiters(
        self, run_id: UUID | str, *, signal_name: str | None = None
    ) -> list[FlowSignalWaiter]:
        if signal_name is None:
            run = check_run(run_id)
            with self._lock:
                return oldest_first(self._runs.get(run, {}).values())
        signal = check_signal(run_id, signal_name)
        return self._of_signal(signal.run_id, signal.signal_name)

    def list_waiters_page(
        self,
        run_id: UUID | str,
        *,
        limit: int,
        after: WaiterPosition | None = None,
        signal_name: str | None = None,
    ) -> list[FlowSignalWaiter]:
        page = check_page(run_id, limit, after, signal_name)
        if page.signal_name is None:
            with self._lock:
                waiters = oldest_first(self._runs.get(page.run_id, {}).values())
        else:
            waiters = self._of_signal(page.run_id, page.signal_name)
        return page_of(waiters, page.limit, page.after)

    def signal_waiters(self, run_id: UUID | str, signal_name: str) -> list[FlowSignalWaiter]:
        signal = check_signal(run_id, signal_name)
        return [as_the_rule_reads(w) for w in self._of_signal(signal.run_id, signal.signal_name)]

    def _of_signal(self, run: str, name: str) -> list[FlowSignalWaiter]:
        with self._lock:
            waiters = self._runs.get(run, {}).values()
            return oldest_first(w for w in waiters if w.signal_name == name)

    def save_link(self, link: ApprovalLink) -> None:
        with self._lock:
            self._links.setdefault(link.link_id, link)

    def get_link(self, link_id: str) -> ApprovalLink | None:
        with self._lock:
            return self._links.get(link_id)

    def record_decision(self, link_id: str, decision: LinkDecision) -> LinkDecision:
        # Atomic: read and kept under one lock; the first decision stays.
        with self._lock:
            link = self._links[link_id]
            if link.decision is None:
                link = self._links[link_id] = link.model_copy(update={"decision": decision})
            assert link.decision is not None
            return link.decision
