"""flowsignals: a serverless signal store for workflow engines.

A step of a workflow run parks as a *waiter*; it resumes when a *signal* is delivered
to it, exactly once.

The package is layered: ``core`` (the contract: value types, models, errors, the store
protocol and its delivery rule), ``backends`` (in-memory and DynamoDB), ``lambdas`` (the
service, the HTTP API, direct invocation, the notifier and their settings).
"""

from flowsignals.backends.dynamodb import DynamoDBFlowSignalStore
from flowsignals.backends.memory import InMemoryFlowSignalStore
from flowsignals.core.errors import (
    FlowSignalError,
    InvalidSignalRequest,
    PayloadTooLarge,
    StoreUnavailable,
)
from flowsignals.core.models import (
    BufferedSignal,
    FlowSignalWaiter,
    SignalDeliveryResult,
    SignalDeliveryStatus,
    SignalFailure,
)
from flowsignals.core.store import FlowSignalStore

__all__ = [
    "BufferedSignal",
    "DynamoDBFlowSignalStore",
    "FlowSignalError",
    "FlowSignalStore",
    "FlowSignalWaiter",
    "InMemoryFlowSignalStore",
    "InvalidSignalRequest",
    "PayloadTooLarge",
    "SignalDeliveryResult",
    "SignalDeliveryStatus",
    "SignalFailure",
    "StoreUnavailable",
]
