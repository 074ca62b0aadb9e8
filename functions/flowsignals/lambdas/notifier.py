"""The notifier: reads the table's stream and resumes whoever waits, as
docs/contract.md, Resuming the orchestrator, promises.

- A waiter becomes delivered: ``SendTaskSuccess`` with the payload (``SendTaskFailure`` with
  the error and cause of a failure signal) when it has a task token, a ``Signal Delivered``
  EventBridge event, and the ``SignalWaitMs`` metric. A delivered waiter that gets a task
  token it did not have (a register retried after the delivery) resumes that task the same way.
- An undelivered waiter is deleted by TTL: a ``Waiter Expired`` event and ``SendTaskFailure``
  (``FlowSignals.WaiterExpired``); deleted by a caller: ``SendTaskFailure``
  (``FlowSignals.WaiterRemoved``). Inserts, re-registrations, tombstone expiry and the rows of
  buffered (early) signals do nothing. (No write of the store inserts a delivered row: a
  delivery updates a row that exists. A row that arrives delivered was copied — a table
  migration or a restore — and its task was resumed from the table it came from.)

Delivery is at least once: a task already closed is logged and skipped; any other failure
fails only its record (partial batch response), which the event source mapping retries.
"""

from __future__ import annotations

import functools
import json
from datetime import datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import (
    DynamoDBRecord,
    DynamoDBRecordEventName,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError

from flowsignals.backends.aws import aws_client
from flowsignals.backends.row_keys import NOT_A_WAITER_PREFIX
from flowsignals.lambdas.observability import logger, metrics
from flowsignals.lambdas.settings import settings

EVENT_SOURCE = "flowsignals"
WAITER_EXPIRED = "FlowSignals.WaiterExpired"
WAITER_REMOVED = "FlowSignals.WaiterRemoved"
TTL_PRINCIPAL = "dynamodb.amazonaws.com"
# The task is already closed: nothing left to resume, and retrying cannot change that.
_CLOSED_TASK_ERRORS = frozenset({"TaskTimedOut", "TaskDoesNotExist", "InvalidToken"})

# A batch whose every record failed is reported like any other (all items listed), not raised:
# the event source mapping retries exactly the records named.
_processor = BatchProcessor(
    event_type=EventType.DynamoDBStreams, raise_on_entire_batch_failure=False
)


@functools.cache
def _clients() -> tuple[Any, Any]:
    """Step Functions and EventBridge clients, created once per process."""
    return aws_client("stepfunctions"), aws_client("events")


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _close_task(call: str, **arguments: str) -> None:
    """SendTaskSuccess/Failure, skipping a task that is already closed."""
    states, _ = _clients()
    try:
        getattr(states, call)(**arguments)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code not in _CLOSED_TASK_ERRORS:
            raise
        logger.info("Task already closed; skipped", extra={"call": call, "reason": code})


def _publish(detail_type: str, detail: dict[str, Any]) -> None:
    _, events = _clients()
    entry = {
        "Source": EVENT_SOURCE,
        "DetailType": detail_type,
        "Detail": json.dumps(detail),
        "EventBusName": settings().event_bus_name,
    }
    response = events.put_events(Entries=[entry])
    if response.get("FailedEntryCount"):
        failure = response["Entries"][0]
        raise RuntimeError(
            f"PutEvents failed: {failure.get('ErrorCode')} {failure.get('ErrorMessage')}"
        )


def _waiter_fields(image: dict[str, Any]) -> dict[str, Any]:
    return {
        "runId": image["RunId"],
        "stepKey": image["StepKey"],
        "signalName": image["SignalName"],
        "createdAt": image["CreatedAt"],
    }


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:  # a row written before payloads had to be JSON: its text
        return text


def _output(waiter: dict[str, Any]) -> str:
    """The task's output: the payload; a waiter delivered by a quorum adds its approvals
    (who, when, what) to the payload's object (a payload that is no object goes as it is)."""
    payload = waiter["PayloadJson"]
    approvals = waiter.get("Approvals")
    value = _json(payload) if approvals else None
    if not isinstance(value, dict):
        return str(payload)
    listed = [
        {"by": a["By"], "at": a["At"], "payload": _json(a["PayloadJson"])} for a in approvals or []
    ]
    return json.dumps({**value, "approvals": listed}, ensure_ascii=False)


def _resume(waiter: dict[str, Any]) -> None:
    """The waiter's task continues with what was delivered: its payload, or its failure."""
    token = waiter["TaskToken"]
    if "FailureError" in waiter:
        cause = waiter.get("FailureCause")
        _close_task(
            "send_task_failure",
            taskToken=token,
            error=waiter["FailureError"],
            **({} if cause is None else {"cause": cause}),
        )
    else:
        _close_task("send_task_success", taskToken=token, output=_output(waiter))


def _on_delivered(waiter: dict[str, Any]) -> None:
    if "TaskToken" in waiter:
        _resume(waiter)
    wait = _instant(waiter["DeliveredAt"]) - _instant(waiter["CreatedAt"])
    wait_ms = round(wait.total_seconds() * 1000)
    _publish(
        "Signal Delivered",
        {
            **_waiter_fields(waiter),
            "deliveredAt": waiter["DeliveredAt"],
            "waitMs": wait_ms,
            "deliveredBy": waiter.get("DeliveredBy"),
            "failed": "FailureError" in waiter,
            "error": waiter.get("FailureError"),
        },
    )
    metrics.add_metric(name="SignalWaitMs", unit=MetricUnit.Milliseconds, value=wait_ms)


def _on_removed_undelivered(waiter: dict[str, Any], by_ttl: bool) -> None:
    if by_ttl:
        _publish("Waiter Expired", {**_waiter_fields(waiter), "expiresAt": waiter.get("ExpiresAt")})
    if "TaskToken" in waiter:
        _close_task(
            "send_task_failure",
            taskToken=waiter["TaskToken"],
            error=WAITER_EXPIRED if by_ttl else WAITER_REMOVED,
            cause=f"The waiter {waiter['StepKey']!r} of run {waiter['RunId']} was "
            + ("deleted by TTL after its deadline." if by_ttl else "removed before a signal came."),
        )


def handle_record(record: DynamoDBRecord) -> None:
    change = record.dynamodb
    if change is None:
        return
    old, new = change.old_image or {}, change.new_image or {}
    if str((new or old).get("StepKey", "")).startswith(NOT_A_WAITER_PREFIX):
        return  # an early signal kept for a waiter, or an approval link: not a waiter
    if record.event_name is DynamoDBRecordEventName.INSERT:
        return  # a new waiter, or a row copied from another table: nothing to resume
    if record.event_name is DynamoDBRecordEventName.REMOVE:
        if old and "DeliveredAt" not in old:
            by_ttl = (record.user_identity or {}).get("principalId") == TTL_PRINCIPAL
            _on_removed_undelivered(old, by_ttl)
    elif "DeliveredAt" in new and "DeliveredAt" not in old:
        _on_delivered(new)
    elif "DeliveredAt" in new and new.get("TaskToken") not in (None, old.get("TaskToken")):
        # A delivered waiter got a task token it did not have (a register retried after the
        # delivery): that task resumes too, or it would hang.
        _resume(new)


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True, log_event=False)  # records hold task tokens
def notifier_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=handle_record, processor=_processor, context=context
    )
