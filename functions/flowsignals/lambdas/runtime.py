"""What a Lambda process creates once: the logger, tracer and metrics every handler shares,
and the service over the table the settings name (created at first use, then reused)."""

from __future__ import annotations

import functools

from aws_lambda_powertools import Logger, Metrics, Tracer

from flowsignals.backends.dynamodb import DynamoDBFlowSignalStore
from flowsignals.core.store import FlowSignalStore
from flowsignals.lambdas.service import SignalService
from flowsignals.lambdas.settings import settings

logger = Logger(service="flowsignals")
tracer = Tracer(service="flowsignals")
metrics = Metrics(namespace="FlowSignals", service="flowsignals")


@functools.cache
def store() -> FlowSignalStore:
    """The process's store (its boto3 client with it)."""
    config = settings()
    return DynamoDBFlowSignalStore(config.table_name, retention=config.retention)


@functools.cache
def service() -> SignalService:
    return SignalService(store(), metrics)
