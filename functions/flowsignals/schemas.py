"""The JSON shapes of the HTTP API and of direct invocation (SPEC sections 3 and 4): camelCase
request models, and the views of waiters and deliveries."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal, Self, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

from flowsignals.errors import InvalidSignalRequest
from flowsignals.models import FlowSignalWaiter, SignalDeliveryResult
from flowsignals.values import format_timestamp

# The longest a Step Functions task may wait; also keeps now + timeout representable.
MAX_TIMEOUT_SECONDS = 31_536_000


def _iso_text(value: object) -> object:
    """Deadlines are ISO-8601 text: a JSON number is not read as epoch seconds."""
    if not isinstance(value, str):
        raise ValueError("must be an ISO-8601 date-time string with a UTC offset")
    return value


class _Request(BaseModel):
    # Unknown fields are an error: a misspelt "timeoutSecond" must not register a waiter
    # that never expires.
    model_config = ConfigDict(extra="forbid", frozen=True)


class RegisterWaiterBody(_Request):
    """The body of ``PUT /runs/{runId}/waiters/{stepKey}``."""

    signalName: StrictStr
    expiresAt: Annotated[AwareDatetime, BeforeValidator(_iso_text)] | None = None
    timeoutSeconds: Annotated[StrictInt, Field(gt=0, le=MAX_TIMEOUT_SECONDS)] | None = None
    taskToken: StrictStr | None = None

    @model_validator(mode="after")
    def _one_deadline_form(self) -> Self:
        if self.expiresAt is not None and self.timeoutSeconds is not None:
            raise ValueError("expiresAt and timeoutSeconds are mutually exclusive")
        return self

    def deadline(self, now: datetime) -> datetime | None:
        if self.timeoutSeconds is not None:
            return now + timedelta(seconds=self.timeoutSeconds)
        return self.expiresAt


class RegisterWaiterEvent(RegisterWaiterBody):
    runId: StrictStr
    stepKey: StrictStr


class WaiterEvent(_Request):
    runId: StrictStr
    stepKey: StrictStr


class RunEvent(_Request):
    runId: StrictStr


class DeliverSignalEvent(_Request):
    runId: StrictStr
    signalName: StrictStr
    payload: JsonValue = Field(default_factory=dict)
    idempotencyKey: StrictStr | None = None

    def payload_json(self) -> str:
        return json.dumps(self.payload, ensure_ascii=False, allow_nan=False)


RequestModel = TypeVar("RequestModel", bound=BaseModel)


def parse_request(model: type[RequestModel], data: object) -> RequestModel:
    """``data`` as ``model``, or ``InvalidSignalRequest`` naming each bad field, not its value."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise InvalidSignalRequest(describe_errors(error.errors())) from None


def describe_errors(errors: Any) -> str:
    """Pydantic-style errors as one line, locations and messages only: inputs may be secrets."""
    parts = []
    for error in errors:
        location = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        parts.append(f"{location or 'body'}: {error.get('msg', 'invalid')}")
    return "; ".join(parts)


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


class WaiterList(BaseModel):
    waiters: list[WaiterView]


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
        "runId": str(waiter.run_id),
        "stepKey": waiter.step_key,
        "signalName": waiter.signal_name,
        "createdAt": format_timestamp(waiter.created_at),
        "expiresAt": _timestamp(waiter.expires_at),
        "deliveredAt": _timestamp(waiter.delivered_at),
        "payload": None if waiter.payload_json is None else json.loads(waiter.payload_json),
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
