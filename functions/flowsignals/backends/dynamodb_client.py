"""The DynamoDB client as the store uses it: short timeouts, answers within the invocation's
time (``answer_within``), and botocore's failures turned into the store's errors."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from flowsignals.backends.aws import aws_client
from flowsignals.core.errors import FlowSignalError, StoreUnavailable

# Codes that say "try later", not "you asked wrong".
_TRANSIENT_ERRORS = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionConflictException",
    }
)

# The instant (time.monotonic()) by which the current operation must have answered.
_answer_by: ContextVar[float | None] = ContextVar("flowsignals_answer_by", default=None)


@contextmanager
def answer_within(seconds: float) -> Iterator[None]:
    """Inside the block, a DynamoDB attempt (a first try or a retry) starts only when it can
    finish before ``seconds`` from now, given the client's connect and read timeouts;
    otherwise the operation raises ``StoreUnavailable`` in time to be answered."""
    token = _answer_by.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _answer_by.reset(token)


def default_client() -> Any:
    """A DynamoDB client: botocore standard retries, timeouts short enough that a retry fits
    in a Lambda invocation. The endpoint follows the usual AWS settings
    (``AWS_ENDPOINT_URL_DYNAMODB``, region). No client-side parameter validation: the store
    builds every request from checked arguments, and DynamoDB validates it again anyway (a
    tenth of botocore's time on each call)."""
    return aws_client(
        "dynamodb",
        Config(
            retries={"mode": "standard", "total_max_attempts": 4},
            connect_timeout=1,
            read_timeout=3,
            parameter_validation=False,
        ),
    )


class ConditionFailed(Exception):
    """A conditional write did not apply; ``old`` is the row it found, if any."""

    def __init__(self, old: dict[str, Any] | None) -> None:
        super().__init__("condition failed")
        self.old = old


class TransactionCanceled(Exception):
    """A transaction did not apply; ``reasons`` holds each item's code ("None" where fine)."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__(f"transaction canceled: {reasons}")
        self.reasons = reasons


class _OutOfTime(Exception):
    """Another attempt could not finish before the operation must answer."""


def refuse_late_attempts(client: Any) -> None:
    """Make the client honour ``answer_within`` (once per client, however many stores)."""
    config = client.meta.config
    attempt_seconds = (config.connect_timeout or 0) + (config.read_timeout or 0)

    def refuse_late_attempt(**_: Any) -> None:
        answer_by = _answer_by.get()
        if answer_by is not None and time.monotonic() + attempt_seconds > answer_by:
            raise _OutOfTime

    client.meta.events.register(
        "before-send.dynamodb", refuse_late_attempt, unique_id="flowsignals-answer-within"
    )


def call(client: Any, operation: str, **params: Any) -> dict[str, Any]:
    """One DynamoDB request, its failures turned into the store's errors."""
    try:
        response: dict[str, Any] = getattr(client, operation)(**params)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code == "ConditionalCheckFailedException":
            raise ConditionFailed(error.response.get("Item")) from None
        if code == "TransactionCanceledException":
            cancelled = error.response.get("CancellationReasons", [])
            reasons = [reason.get("Code", "None") for reason in cancelled]
            raise TransactionCanceled(reasons) from None
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in _TRANSIENT_ERRORS or status >= 500:
            raise StoreUnavailable(f"DynamoDB {operation} failed after retries: {code}") from error
        raise FlowSignalError(f"DynamoDB refused {operation}: {code}") from error
    except (BotoConnectionError, HTTPClientError) as error:
        raise StoreUnavailable(f"DynamoDB could not be reached: {error}") from error
    except _OutOfTime:
        raise StoreUnavailable(f"DynamoDB {operation}: no time left for another attempt") from None
    except BotoCoreError as error:
        raise FlowSignalError(f"DynamoDB {operation} failed: {error}") from error
    return response
