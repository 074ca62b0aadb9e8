"""flowsignals: a serverless signal store for workflow engines.

A step of a workflow run parks as a *waiter*; it resumes when a *signal* is delivered
to it, exactly once.
"""

from flowsignals.dynamodb import DynamoDBFlowSignalStore
from flowsignals.errors import (
    FlowSignalError,
    InvalidSignalRequest,
    PayloadTooLarge,
    StoreUnavailable,
)
from flowsignals.memory import InMemoryFlowSignalStore
from flowsignals.models import FlowSignalWaiter, SignalDeliveryResult, SignalDeliveryStatus
from flowsignals.store import FlowSignalStore

__all__ = [
    "DynamoDBFlowSignalStore",
    "FlowSignalError",
    "FlowSignalStore",
    "FlowSignalWaiter",
    "InMemoryFlowSignalStore",
    "InvalidSignalRequest",
    "PayloadTooLarge",
    "SignalDeliveryResult",
    "SignalDeliveryStatus",
    "StoreUnavailable",
]
