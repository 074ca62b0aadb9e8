"""AWS clients, from botocore's session: what boto3's clients are, without loading boto3's
resources and transfer manager (s3transfer, multiprocessing), which no function uses: 20 ms
of every cold start.

A service a request waits on (DynamoDB; Secrets Manager, for the links' keys) answers within
the invocation's time (``answer_within``), and its failures become the store's errors
(``aws_errors``): busy, failing or out of time is ``StoreUnavailable``, whichever it was."""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

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


@functools.cache
def aws_session() -> Any:
    """The process's session, as boto3's default one: it reads the usual AWS settings
    (credentials, region, AWS_ENDPOINT_URL_<SERVICE>); its events reach every client."""
    return botocore.session.get_session()


def aws_client(service: str, config: Config | None = None) -> Any:
    """A client with botocore's standard retries (or ``config``)."""
    standard = Config(retries={"mode": "standard"})
    return aws_session().create_client(service, config=config or standard)


def budgeted_client(service: str, **options: Any) -> Any:
    """A client of a service a request waits on: botocore's standard retries, timeouts short
    enough that a retry fits in a Lambda invocation, every attempt within ``answer_within``.
    ``options`` are more of botocore's ``Config``."""
    config = Config(
        retries={"mode": "standard", "total_max_attempts": 4},
        connect_timeout=1,
        read_timeout=3,
        **options,
    )
    client = aws_client(service, config)
    refuse_late_attempts(client)
    return client


@contextmanager
def answer_within(seconds: float) -> Iterator[None]:
    """Inside the block, an attempt of a budgeted client (a first try or a retry) starts only
    when it can finish before ``seconds`` from now, given the client's connect and read
    timeouts; otherwise the operation raises ``StoreUnavailable`` in time to be answered."""
    token = _answer_by.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _answer_by.reset(token)


class _OutOfTime(Exception):
    """Another attempt could not finish before the operation must answer."""


def refuse_late_attempts(client: Any) -> None:
    """Make the client honour ``answer_within`` (once per client, however many users)."""
    config = client.meta.config
    attempt_seconds = (config.connect_timeout or 0) + (config.read_timeout or 0)

    def refuse_late_attempt(**_: Any) -> None:
        answer_by = _answer_by.get()
        if answer_by is not None and time.monotonic() + attempt_seconds > answer_by:
            raise _OutOfTime

    client.meta.events.register(
        f"before-send.{client.meta.service_model.service_id.hyphenize()}",
        refuse_late_attempt,
        unique_id="flowsignals-answer-within",
    )


@contextmanager
def aws_errors(service: str, operation: str) -> Iterator[None]:
    """Inside the block, botocore's failures of a request to ``service`` become the store's
    errors: throttled, failing (5xx), unreachable or out of time is ``StoreUnavailable``
    (nothing was done: retry); any other refusal a ``FlowSignalError`` naming its code."""
    try:
        yield
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in _TRANSIENT_ERRORS or status >= 500:
            raise StoreUnavailable(f"{service} {operation} failed after retries: {code}") from error
        raise FlowSignalError(f"{service} refused {operation}: {code}") from error
    except (BotoConnectionError, HTTPClientError) as error:
        raise StoreUnavailable(f"{service} could not be reached: {error}") from error
    except _OutOfTime:
        raise StoreUnavailable(f"{service} {operation}: no time left for another attempt") from None
    except BotoCoreError as error:
        raise FlowSignalError(f"{service} {operation} failed: {error}") from error
