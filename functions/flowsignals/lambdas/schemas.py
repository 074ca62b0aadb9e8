"""The JSON shapes of the HTTP API and of direct invocation: camelCase request models built
from the contract's value types, and the views of waiters and deliveries."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator
from pydantic_core import PydanticCustomError

from flowsignals.core.models import FlowSignalWaiter, SignalDeliveryResult
from flowsignals.core.values import (
    Deadline,
    IdempotencyKey,
    PayloadValue,
    RunId,
    SignalName,
    StepKey,
    TaskToken,
    TimeoutSeconds,
    format_timestamp,
    read_payload,
)

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 50

PageLimit = Annotated[
    int,
    Field(ge=1, le=MAX_PAGE_SIZE, description=f"Waiters per page (default {DEFAULT_PAGE_SIZE})"),
]
NextToken = Annotated[
    str,
    Field(
        min_length=1,
        max_length=2048,
        description="The nextToken of the previous page, as it was given",
    ),
]


class _Request(BaseModel):
    # Unknown fields are an error: a misspelt "timeoutSecond" must not register a waiter
    # that never expires.
    model_config = ConfigDict(extra="forbid", frozen=True)


class RegisterWaiterBody(_Request):
    """The body of ``PUT /runs/{runId}/waiters/{stepKey}``. A task token is not accepted
    here: anyone able to call the API could otherwise complete any task of the account."""

    signalName: SignalName
    expiresAt: Deadline | None = None
    timeoutSeconds: TimeoutSeconds | None = None

    @model_validator(mode="after")
    def _one_deadline_form(self) -> Self:
        if self.expiresAt is not None and self.timeoutSeconds is not None:
            raise PydanticCustomError(
                "exclusive_fields", "expiresAt and timeoutSeconds are mutually exclusive"
            )
        return self

    def deadline(self, now: datetime) -> datetime | None:
        if self.timeoutSeconds is not None:
            return now + timedelta(seconds=self.timeoutSeconds)
        return self.expiresAt


class RegisterWaiterEvent(RegisterWaiterBody):
    runId: RunId
    stepKey: StepKey
    taskToken: TaskToken | None = None


class WaiterEvent(_Request):
    runId: RunId
    stepKey: StepKey


class ListWaitersEvent(_Request):
    runId: RunId
    limit: PageLimit = DEFAULT_PAGE_SIZE
    nextToken: NextToken | None = None


class DeliverSignalEvent(_Request):
    runId: RunId
    signalName: SignalName
    # Omitted is {}, an explicit null is null.
    payload: PayloadValue = "{}"
    idempotencyKey: IdempotencyKey | None = None


# --- views -------------------------------------------------------------------------------


class WaiterState(StrEnum):
    WAITING = "Waiting"
    DELIVERED = "Delivered"
    EXPIRED = "Expired"


class WaiterView(BaseModel):
    """A waiter as the API shows it. The task token is never shown."""

    runId: str
    stepKey: str
    signalName: str
    createdAt: str
    expiresAt: str | None
    deliveredAt: str | None
    payload: JsonValue = Field(description="The delivered JSON value; null until delivered")
    state: WaiterState


class WaiterPage(BaseModel):
    waiters: list[WaiterView]
    nextToken: str | None = Field(description="Pass it back for the next page; null at the end")


class DeliveredView(BaseModel):
    """The HTTP answer to a successful delivery."""

    delivered: Literal[True] = True
    stepKey: str
    deliveredAt: str
    replayed: bool


def _timestamp(value: datetime | None) -> str | None:
    return None if value is None else format_timestamp(value)


def waiter_view(waiter: FlowSignalWaiter, now: datetime) -> dict[str, Any]:
    if waiter.is_delivered:
        state = WaiterState.DELIVERED
    elif waiter.is_expired(now):
        state = WaiterState.EXPIRED
    else:
        state = WaiterState.WAITING
    return {
        "runId": waiter.run_id,
        "stepKey": waiter.step_key,
        "signalName": waiter.signal_name,
        "createdAt": format_timestamp(waiter.created_at),
        "expiresAt": _timestamp(waiter.expires_at),
        "deliveredAt": _timestamp(waiter.delivered_at),
        "payload": None if waiter.payload_json is None else read_payload(waiter.payload_json),
        "state": state.value,
    }


def delivery_result_view(result: SignalDeliveryResult) -> dict[str, Any]:
    return {
        "status": result.status.value,
        "stepKey": result.step_key,
        "deliveredAt": _timestamp(result.delivered_at),
        "expiresAt": _timestamp(result.expires_at),
        "replayed": result.replayed,
    }
