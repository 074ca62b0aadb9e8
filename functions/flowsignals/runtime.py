"""What a Lambda process creates once: the store over the table named by ``TABLE_NAME``, and
the logger, tracer and metrics every handler shares."""

from __future__ import annotations

import functools
import os
from datetime import UTC, datetime, timedelta

from aws_lambda_powertools import Logger, Metrics, Tracer

from flowsignals.dynamodb import DynamoDBFlowSignalStore
from flowsignals.store import FlowSignalStore

logger = Logger(service="flowsignals")
tracer = Tracer(service="flowsignals")
metrics = Metrics(namespace="FlowSignals", service="flowsignals")


@functools.cache
def store() -> FlowSignalStore:
    """The process's store, created at first use (its boto3 client with it) and then reused."""
    retention = timedelta(days=int(os.environ.get("RETENTION_DAYS", "7")))
    return DynamoDBFlowSignalStore(os.environ["TABLE_NAME"], retention=retention)


def utc_now() -> datetime:
    return datetime.now(UTC)
