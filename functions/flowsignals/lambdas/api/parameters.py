"""The path, header and query parameters the routes share, typed with the contract's value
types (so the resolver validates them and the OpenAPI document shows each rule)."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Header, Path, Query

from flowsignals.core.values import (
    BufferSecondsText,
    HeaderIdempotencyKey,
    RunId,
    SignalName,
    StepKey,
)

RunIdPath = Annotated[RunId, Path(description="The run id (URL-encoded)")]
StepKeyPath = Annotated[StepKey, Path(description="The step key (URL-encoded)")]
SignalNamePath = Annotated[SignalName, Path(description="The signal name (URL-encoded)")]
IdempotencyKeyHeader = Annotated[
    HeaderIdempotencyKey | None,
    Header(alias="Idempotency-Key", description="A retry with the same key delivers nothing more"),
]
BufferSecondsQuery = Annotated[BufferSecondsText | None, Query()]
