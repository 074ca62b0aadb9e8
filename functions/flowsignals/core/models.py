"""The records a store returns."""

from datetime import datetime
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from flowsignals.core.values import FailureCause, FailureError, RunId


class SignalDeliveryStatus(StrEnum):
    DELIVERED = "Delivered"
    NOT_FOUND = "NotFound"
    ALREADY_DELIVERED = "AlreadyDelivered"
    EXPIRED = "Expired"
    BUFFERED = "Buffered"
    PENDING = "Pending"


class SignalFailure(BaseModel):
    """A failure signal: resumes a Step Functions task with ``SendTaskFailure(error, cause)``,
    which a state machine ``Catch``es by ``error`` (e.g. ``Rejected``)."""

    # Checked again wherever it is handed in: model_copy(update=...) skips validation.
    model_config = ConfigDict(frozen=True, revalidate_instances="always", defer_build=True)

    error: FailureError
    cause: FailureCause | None = None


class BufferedSignal(BaseModel):
    """An early signal kept for the run's next waiter of its name (its payload stays private)."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    signal_name: str
    buffered_at: AwareDatetime
    buffered_until: AwareDatetime


class Approval(BaseModel):
    """One decider's approval of a waiter that needs a quorum: who (as ``delivered_by``
    names them, else their identity), when, and what they approved."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    by: str
    at: AwareDatetime
    payload_json: str


class FlowSignalWaiter(BaseModel):
    """One parked step of a run: the row ``(run_id, step_key)``.

    ``task_token`` is kept out of every serialised form (``model_dump``, JSON, ``repr``):
    it is a bearer credential for the orchestrator's task.
    """

    model_config = ConfigDict(frozen=True, defer_build=True)

    run_id: RunId
    step_key: str
    signal_name: str
    created_at: AwareDatetime
    expires_at: AwareDatetime | None = None
    delivered_at: AwareDatetime | None = None
    payload_json: str | None = None
    failure: SignalFailure | None = None
    delivered_by: str | None = None
    idempotency_key: str | None = None
    task_token: str | None = Field(default=None, exclude=True, repr=False)
    # Who may decide it (empty: anyone allowed on the route) and how many must agree.
    deciders: tuple[str, ...] = ()
    quorum: int = 1
    # The approvals given so far (a quorum of them delivers it), and the identities that gave
    # them: one approval each.
    approvals: tuple[Approval, ...] = ()
    approved_by: frozenset[str] = frozenset()

    @property
    def is_delivered(self) -> bool:
        return self.delivered_at is not None

    def may_be_decided_by(self, identities: tuple[str, ...]) -> bool:
        """Whether a caller with these identities may decide it: one of them is among the
        deciders (or none are named); a quorum needs callers who say who they are."""
        if not self.deciders:
            return self.quorum == 1 or bool(identities)
        return any(identity in self.deciders for identity in identities)

    def can_receive(self, now: datetime) -> bool:
        """Neither delivered nor expired: a signal may be delivered to it at ``now``."""
        return not self.is_delivered and not self.is_expired(now)

    def is_expired(self, now: datetime) -> bool:
        """Undelivered and ``now`` at or past the deadline."""
        return not self.is_delivered and self.expires_at is not None and now >= self.expires_at

    @property
    def position(self) -> tuple[datetime, str]:
        """The contract's "oldest first": ``created_at``, then ``step_key``."""
        return (self.created_at, self.step_key)


class SignalDeliveryResult(BaseModel):
    """The answer to ``deliver_signal``. Fields that do not apply to a status are None."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    status: SignalDeliveryStatus
    step_key: str | None = None
    delivered_at: AwareDatetime | None = None
    expires_at: AwareDatetime | None = None
    replayed: bool = False
    # Pending: the approvals the waiter has now, of the quorum it needs.
    approvals: int | None = None
    quorum: int | None = None
