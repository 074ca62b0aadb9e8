"""The operations as both entrances offer them (the HTTP API and direct invocation): the
store's operations on validated requests, one clock for deadlines and states, pages of a
run's waiters, and the metrics of every call."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

from flowsignals.core.models import SignalDeliveryResult, SignalFailure
from flowsignals.core.store import Clock, FlowSignalStore, read_clock, system_clock
from flowsignals.lambdas.paging import decode_token, encode_token, fit_page
from flowsignals.lambdas.schemas import RegisterWaiterEvent, signal_view, waiter_view


class SignalService:
    def __init__(
        self, store: FlowSignalStore, metrics: Metrics, clock: Clock = system_clock
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._clock = clock

    def register(
        self, request: RegisterWaiterEvent, *, keep_task_token: bool = False
    ) -> dict[str, Any]:
        now = read_clock(self._clock)
        waiter = self._store.register_waiter(
            request.runId,
            request.stepKey,
            request.signalName,
            request.deadline(now),
            task_token=request.taskToken,
            keep_task_token=keep_task_token,
            deciders=request.deciders,
            quorum=request.quorum,
        )
        self._metrics.add_metric(name="WaiterRegistered", unit=MetricUnit.Count, value=1)
        return waiter_view(waiter, now)

    def deliver(
        self,
        run_id: str,
        signal_name: str,
        payload_json: str | None,
        *,
        failure: SignalFailure | None = None,
        idempotency_key: str | None = None,
        delivered_by: str | None = None,
        buffer_seconds: int | None = None,
        caller_identities: tuple[str, ...] | None = None,
    ) -> SignalDeliveryResult:
        result = self._store.deliver_signal(
            run_id,
            signal_name,
            payload_json,
            failure=failure,
            idempotency_key=idempotency_key,
            delivered_by=delivered_by,
            buffer_for=None if buffer_seconds is None else timedelta(seconds=buffer_seconds),
            caller_identities=caller_identities,
        )
        self._metrics.add_metric(
            name=f"Signal{result.status.value}", unit=MetricUnit.Count, value=1
        )
        return result

    def get(self, run_id: str, step_key: str) -> dict[str, Any] | None:
        waiter = self._store.get_waiter(run_id, step_key)
        return None if waiter is None else waiter_view(waiter, read_clock(self._clock))

    def list_buffered(self, run_id: str) -> dict[str, Any]:
        """``{"signals": [...]}``: the run's early signals waiting for a waiter, oldest first
        (as many as fit the response's size budget: thousands of 256-character names)."""
        signals = self._store.list_buffered_signals(run_id)
        views, _ = fit_page(signal_view(signal) for signal in signals)
        return {"signals": views}

    def remove(self, run_id: str, step_key: str) -> None:
        self._store.remove_waiter(run_id, step_key)

    def list_page(
        self, run_id: str, limit: int, next_token: str | None, signal_name: str | None = None
    ) -> dict[str, Any]:
        """``{"waiters": [...], "nextToken": ...}``: at most ``limit`` waiters (of one signal,
        when named), oldest first, cut short where the response would grow past its size
        budget."""
        listing = (run_id, signal_name)
        after = None if next_token is None else decode_token(listing, next_token)
        # One more than asked for tells whether another page follows.
        waiters = self._store.list_waiters_page(
            run_id, limit=limit + 1, after=after, signal_name=signal_name
        )
        now = read_clock(self._clock)
        views, cut = fit_page(waiter_view(w, now) for w in waiters[:limit])
        more = cut or len(waiters) > limit
        last = waiters[len(views) - 1] if views else None
        token = encode_token(listing, last.position) if more and last is not None else None
        return {"waiters": views, "nextToken": token}
