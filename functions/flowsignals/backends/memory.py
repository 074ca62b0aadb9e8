"""The in-memory backend: process-local and thread-safe, for tests and local runs."""

from __future__ import annotations

import threading
from datetime import datetime
from uuid import UUID

from flowsignals.core.arguments import (
    check_delivery,
    check_page,
    check_registration,
    check_run,
    check_waiter_key,
)
from flowsignals.core.models import FlowSignalWaiter, SignalDeliveryResult
from flowsignals.core.store import (
    Clock,
    WaiterPosition,
    delivered,
    next_receiver,
    oldest_first,
    page_of,
    read_clock,
    replay_of,
    system_clock,
    undeliverable,
)


class InMemoryFlowSignalStore:
    """A ``FlowSignalStore`` in a dict. Waiters are immutable, so returning them is safe."""

    def __init__(self, *, clock: Clock | None = None) -> None:
        self._clock = clock or system_clock
        self._lock = threading.Lock()
        self._runs: dict[str, dict[str, FlowSignalWaiter]] = {}

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
        run, key, name = arguments.run_id, arguments.step_key, arguments.signal_name
        deadline, token = arguments.expires_at, arguments.task_token
        # Atomic: the read of the existing waiter and the write happen under one lock.
        with self._lock:
            waiters = self._runs.setdefault(run, {})
            existing = waiters.get(key)
            if existing is None:
                waiter = FlowSignalWaiter(
                    run_id=run,
                    step_key=key,
                    signal_name=name,
                    created_at=read_clock(self._clock),
                    expires_at=deadline,
                    task_token=token,
                )
            else:  # keeps created_at and an earlier delivery
                waiter = existing.model_copy(
                    update={"signal_name": name, "expires_at": deadline, "task_token": token}
                )
            waiters[key] = waiter
            return waiter

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
        payload = arguments.payload_json
        # Atomic: choosing the receiver and marking it delivered happen under one lock,
        # so no two deliveries can both see the same waiter undelivered.
        with self._lock:
            now = read_clock(self._clock)
            waiters = self._runs.get(run, {})
            ordered = oldest_first(w for w in waiters.values() if w.signal_name == name)
            replay = replay_of(ordered, key)
            if replay is not None:
                return replay
            receiver = next_receiver(ordered, now)
            if receiver is None:
                return undeliverable(ordered, now)
            waiters[receiver.step_key] = receiver.model_copy(
                update={"delivered_at": now, "payload_json": payload, "idempotency_key": key}
            )
            return delivered(receiver.step_key, now)

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

    def list_waiters(self, run_id: UUID | str) -> list[FlowSignalWaiter]:
        run = check_run(run_id)
        with self._lock:
            return oldest_first(self._runs.get(run, {}).values())

    def list_waiters_page(
        self, run_id: UUID | str, *, limit: int, after: WaiterPosition | None = None
    ) -> list[FlowSignalWaiter]:
        page = check_page(run_id, limit, after)
        with self._lock:
            waiters = oldest_first(self._runs.get(page.run_id, {}).values())
        return page_of(waiters, page.limit, page.after)
