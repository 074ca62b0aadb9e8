"""The JSON shapes of the HTTP API and of direct invocation: camelCase request models built
from the contract's value types, and the views of waiters and deliveries."""

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from flowsignals.core.models import (
    BufferedSignal,
    FlowSignalWaiter,
    SignalDeliveryResult,
    SignalDeliveryStatus,
    SignalFailure,
)
from flowsignals.core.values import (
    ABSENT,
    ABSENT_OR_NULL,
    DEFAULT_PAGE_SIZE,
    BufferSeconds,
    CallerIdentities,
    Deadline,
    Deciders,
    DeliveredBy,
    FailureCause,
    FailureError,
    IdempotencyKey,
    PageLimit,
    PayloadValue,
    Quorum,
    RunId,
    SignalName,
    StepKey,
    TaskToken,
    TimeoutSeconds,
    format_timestamp,
    not_both,
    reachable_quorum,
    reachable_quorum_schema,
    read_payload,
)

NextToken = Annotated[
    str,
    Field(
        min_length=1,
        max_length=4096,
        description="The nextToken of the previous page, as it was given",
    ),
]


class RequestModel(BaseModel):
    # defer_build: each model is built at its first use, so a function's process builds only
    # the models its requests use (every model of the package is deferred likewise).
    # Unknown fields are an error: a misspelt "timeoutSecond" must not register a waiter
    # that never expires.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class RegisterWaiterBody(RequestModel):
    """The body of ``PUT /runs/{runId}/waiters/{stepKey}``. A task token is not accepted
    here: anyone able to call the API could otherwise complete any task of the account."""

    # The rules across fields, in the OpenAPI document as the validators below enforce them.
    model_config = ConfigDict(
        json_schema_extra={
            "allOf": [
                not_both(expiresAt=ABSENT_OR_NULL, timeoutSeconds=ABSENT_OR_NULL),
                reachable_quorum_schema(),
            ]
        }
    )

    signalName: SignalName
    expiresAt: Deadline | None = None
    timeoutSeconds: TimeoutSeconds | None = None
    deciders: Deciders | None = None
    quorum: Quorum = 1

    @model_validator(mode="after")
    def _one_deadline_form(self) -> Self:
        if self.expiresAt is not None and self.timeoutSeconds is not None:
            raise PydanticCustomError(
                "exclusive_fields", "expiresAt and timeoutSeconds are mutually exclusive"
            )
        return self

    @field_validator("quorum")
    @classmethod
    def _reachable(cls, quorum: int, info: ValidationInfo) -> int:
        return reachable_quorum(quorum, info.data.get("deciders"))

    def deadline(self, now: datetime) -> datetime | None:
        if self.timeoutSeconds is not None:
            return now + timedelta(seconds=self.timeoutSeconds)
        return self.expiresAt


class RegisterWaiterEvent(RegisterWaiterBody):
    runId: RunId
    stepKey: StepKey
    taskToken: TaskToken | None = None


class WaiterEvent(RequestModel):
    runId: RunId
    stepKey: StepKey


class ListWaitersEvent(RequestModel):
    runId: RunId
    limit: PageLimit = DEFAULT_PAGE_SIZE
    nextToken: NextToken | None = None
    signalName: SignalName | None = None


class FailureBody(RequestModel):
    """A failure signal: resumes a Step Functions task with SendTaskFailure(error, cause)."""

    error: FailureError
    cause: FailureCause | None = None

    def failure(self) -> SignalFailure:
        return SignalFailure(error=self.error, cause=self.cause)


class PayloadOrFailure(RequestModel):
    """What delivers a payload (its subclass's ``payload`` field) or a failure, not both."""

    # A payload given as null is a payload (null); a null failure is none.
    model_config = ConfigDict(json_schema_extra=not_both(payload=ABSENT, failure=ABSENT_OR_NULL))

    failure: FailureBody | None = None

    @model_validator(mode="after")
    def _payload_or_failure(self) -> Self:
        if self.failure is not None and "payload" in self.model_fields_set:
            raise PydanticCustomError("payload_or_failure", "give payload or failure, not both")
        return self


class DeliverSignalEvent(PayloadOrFailure):
    runId: RunId
    signalName: SignalName
    # Omitted is {} (unless a failure is given), an explicit null is null.
    payload: PayloadValue = "{}"
    idempotencyKey: IdempotencyKey | None = None
    deliveredBy: DeliveredBy | None = None
    bufferSeconds: BufferSeconds | None = None
    callerIdentities: CallerIdentities | None = None

    def payload_json(self) -> str | None:
        return None if self.failure is not None else self.payload


class SignalsEvent(RequestModel):
    runId: RunId


# --- views -------------------------------------------------------------------------------


class View(BaseModel):
    """An answer's shape, for the OpenAPI document and the client (built at first use)."""

    model_config = ConfigDict(defer_build=True)


PROBLEM_JSON = "application/problem+json"


class Problem(View):
    """An RFC 9457 problem; 409 adds stepKey/deliveredAt, 410 stepKey/expiresAt."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    code: str
    stepKey: str | None = None
    deliveredAt: str | None = None
    expiresAt: str | None = None


class GatewayMessage(View):
    """API Gateway's own answer, given before any function runs (no route, IAM, throttling):
    ``{"message": "Forbidden"}``."""

    message: str


class WaiterState(StrEnum):
    WAITING = "Waiting"
    DELIVERED = "Delivered"
    EXPIRED = "Expired"


class FailureView(View):
    error: str
    cause: str | None


class ApprovalView(View):
    by: str
    at: str
    payload: JsonValue


class WaiterView(View):
    """A waiter as the API shows it. The task token is never shown."""

    runId: str
    stepKey: str
    signalName: str
    createdAt: str
    expiresAt: str | None
    deliveredAt: str | None
    payload: JsonValue = Field(description="The delivered JSON value; null until delivered")
    failure: FailureView | None = Field(description="The failure delivered instead, if any")
    deliveredBy: str | None
    state: WaiterState
    deciders: list[str] = Field(description="Who may decide it (empty: anyone on the route)")
    quorum: int = Field(description="How many distinct deciders must approve")
    approvals: list[ApprovalView] = Field(description="The approvals given so far, oldest first")


class WaiterPage(View):
    waiters: list[WaiterView]
    nextToken: str | None = Field(description="Pass it back for the next page; null at the end")


class DeliveredView(View):
    """The HTTP answer to a successful delivery."""

    delivered: Literal[True] = True
    stepKey: str
    deliveredAt: str
    replayed: bool


class PendingView(View):
    """The HTTP answer (202) to an approval that does not complete its waiter's quorum."""

    delivered: Literal[False] = False
    stepKey: str
    approvals: int
    quorum: int
    replayed: bool


class BufferedView(View):
    """The HTTP answer (202) to a signal kept for a waiter not registered yet."""

    delivered: Literal[False] = False
    buffered: Literal[True] = True
    bufferedUntil: str
    replayed: bool


class SignalView(View):
    signalName: str
    bufferedAt: str
    bufferedUntil: str


class SignalList(View):
    signals: list[SignalView]


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
        "failure": None if waiter.failure is None else waiter.failure.model_dump(),
        "deliveredBy": waiter.delivered_by,
        "state": state.value,
        "deciders": list(waiter.deciders),
        "quorum": waiter.quorum,
        "approvals": [
            {"by": a.by, "at": format_timestamp(a.at), "payload": read_payload(a.payload_json)}
            for a in waiter.approvals
        ],
    }


def signal_view(signal: BufferedSignal) -> dict[str, Any]:
    return {
        "signalName": signal.signal_name,
        "bufferedAt": format_timestamp(signal.buffered_at),
        "bufferedUntil": format_timestamp(signal.buffered_until),
    }


def delivery_result_view(result: SignalDeliveryResult) -> dict[str, Any]:
    view: dict[str, Any] = {
        "status": result.status.value,
        "stepKey": result.step_key,
        "deliveredAt": _timestamp(result.delivered_at),
        "expiresAt": _timestamp(result.expires_at),
        "replayed": result.replayed,
    }
    if result.status is SignalDeliveryStatus.PENDING:
        view |= {"approvals": result.approvals, "quorum": result.quorum}
    return view
