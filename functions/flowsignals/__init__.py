"""flowsignals: a serverless signal store for workflow engines.

A step of a workflow run parks as a *waiter*; it resumes when a *signal* is delivered
to it, exactly once.

The package is layered: ``core`` (the contract: value types, models, errors, the store
protocol and its delivery rule), ``backends`` (in-memory and DynamoDB), ``lambdas`` (the
service, the HTTP API, direct invocation, the notifier and their settings).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowsignals.backends.dynamodb import DynamoDBFlowSignalStore
    from flowsignals.backends.memory import InMemoryFlowSignalStore
    from flowsignals.core.errors import (
        FlowSignalError,
        InvalidSignalRequest,
        NotAllowedToDecide,
        PayloadTooLarge,
        StoreUnavailable,
    )
    from flowsignals.core.models import (
        Approval,
        BufferedSignal,
        FlowSignalWaiter,
        SignalDeliveryResult,
        SignalDeliveryStatus,
        SignalFailure,
    )
    from flowsignals.core.store import FlowSignalStore

# Each name is imported at its first use: a function's process that imports one module of the
# package (a handler) does not load the others (the in-memory store, say).
_HOMES = {
    "DynamoDBFlowSignalStore": "flowsignals.backends.dynamodb",
    "InMemoryFlowSignalStore": "flowsignals.backends.memory",
    "FlowSignalError": "flowsignals.core.errors",
    "InvalidSignalRequest": "flowsignals.core.errors",
    "NotAllowedToDecide": "flowsignals.core.errors",
    "PayloadTooLarge": "flowsignals.core.errors",
    "StoreUnavailable": "flowsignals.core.errors",
    "Approval": "flowsignals.core.models",
    "BufferedSignal": "flowsignals.core.models",
    "FlowSignalWaiter": "flowsignals.core.models",
    "SignalDeliveryResult": "flowsignals.core.models",
    "SignalDeliveryStatus": "flowsignals.core.models",
    "SignalFailure": "flowsignals.core.models",
    "FlowSignalStore": "flowsignals.core.store",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'flowsignals' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value
    return value


__all__ = [
    "Approval",
    "BufferedSignal",
    "DynamoDBFlowSignalStore",
    "FlowSignalError",
    "FlowSignalStore",
    "FlowSignalWaiter",
    "InMemoryFlowSignalStore",
    "InvalidSignalRequest",
    "NotAllowedToDecide",
    "PayloadTooLarge",
    "SignalDeliveryResult",
    "SignalDeliveryStatus",
    "SignalFailure",
    "StoreUnavailable",
]
