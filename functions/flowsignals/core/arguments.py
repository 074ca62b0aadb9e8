"""Each store operation's arguments, checked by every backend before any I/O (so a rejected
request writes nothing), and the one way a pydantic error becomes ``InvalidSignalRequest``."""

from typing import Self, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    StrictBool,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from flowsignals.core.errors import InvalidSignalRequest, PayloadTooLarge, describe_errors
from flowsignals.core.models import SignalFailure
from flowsignals.core.values import (
    PAYLOAD_TOO_LARGE,
    BufferFor,
    CallerIdentities,
    Deadline,
    Deciders,
    DeliveredBy,
    IdempotencyKey,
    PayloadJson,
    Quorum,
    RunId,
    SignalName,
    StepKey,
    StoreLimit,
    TaskToken,
    assumed_role,
    reachable_quorum,
)

Model = TypeVar("Model", bound=BaseModel)


def validate(model: type[Model], data: object) -> Model:
    """``data`` as ``model``, or ``InvalidSignalRequest`` (``PayloadTooLarge`` for an
    oversized payload) naming each bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        errors = error.errors(include_input=False, include_url=False)
        message = describe_errors(errors)
        if any(e["type"] == PAYLOAD_TOO_LARGE for e in errors):
            raise PayloadTooLarge(message) from None
        raise InvalidSignalRequest(message) from None


class _Arguments(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)


class RunArguments(_Arguments):
    run_id: RunId


class WaiterArguments(RunArguments):
    step_key: StepKey


class SignalArguments(RunArguments):
    signal_name: SignalName


class Registration(WaiterArguments):
    signal_name: SignalName
    expires_at: Deadline | None
    task_token: TaskToken | None
    keep_task_token: StrictBool
    deciders: Deciders | None
    quorum: Quorum

    @model_validator(mode="after")
    def _token_or_keep(self) -> Self:
        if self.keep_task_token and self.task_token is not None:
            raise PydanticCustomError(
                "token_or_keep", "give task_token or keep_task_token, not both"
            )
        return self

    @field_validator("quorum")
    @classmethod
    def _reachable(cls, quorum: int, info: ValidationInfo) -> int:
        return reachable_quorum(quorum, info.data.get("deciders"))

    @property
    def who_decides(self) -> tuple[str, ...]:
        return self.deciders or ()


class Delivery(RunArguments):
    signal_name: SignalName
    payload_json: PayloadJson | None
    failure: SignalFailure | None
    idempotency_key: IdempotencyKey | None
    delivered_by: DeliveredBy | None
    buffer_for: BufferFor | None
    caller_identities: CallerIdentities | None = None

    @model_validator(mode="after")
    def _payload_or_failure(self) -> Self:
        if (self.payload_json is None) == (self.failure is None):
            raise PydanticCustomError(
                "payload_or_failure", "give exactly one of payload_json and failure"
            )
        return self

    @property
    def identities(self) -> tuple[str, ...]:
        """The caller's identities, and the role an assumed-role session acts as."""
        given = self.caller_identities or ()
        roles = (assumed_role(identity) for identity in given)
        return given + tuple(role for role in roles if role is not None and role not in given)

    @property
    def principal(self) -> str | None:
        """The identity that names the caller among a quorum's approvers: its first."""
        return self.caller_identities[0] if self.caller_identities else None


def check_registration(
    run_id: object,
    step_key: object,
    signal_name: object,
    expires_at: object,
    task_token: object,
    keep_task_token: object,
    deciders: object,
    quorum: object,
) -> Registration:
    return validate(Registration, locals())


def check_delivery(
    run_id: object,
    signal_name: object,
    payload_json: object,
    failure: object,
    idempotency_key: object,
    delivered_by: object,
    buffer_for: object,
    caller_identities: object,
) -> Delivery:
    return validate(Delivery, locals())


def check_waiter_key(run_id: object, step_key: object) -> WaiterArguments:
    return validate(WaiterArguments, locals())


def check_run(run_id: object) -> str:
    return validate(RunArguments, {"run_id": run_id}).run_id


def check_signal(run_id: object, signal_name: object) -> SignalArguments:
    return validate(SignalArguments, locals())


class Page(RunArguments):
    limit: StoreLimit
    after: tuple[AwareDatetime, str] | None
    signal_name: SignalName | None


def check_page(run_id: object, limit: object, after: object, signal_name: object) -> Page:
    return validate(Page, locals())
