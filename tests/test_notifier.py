"""The notifier (docs/contract.md, Resuming the orchestrator) with realistic DynamoDB stream
records, on moto's Step Functions and EventBridge; and end to end from the handlers through
moto's table stream."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

import boto3
import pytest
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.awsrequest import AWSResponse

from conftest import REGION, TABLE_NAME, moto_table, reset_runtime
from flowsignals.lambdas import notifier
from flowsignals.testing import FakeLambdaContext, http_api_event

STREAM_ARN = (
    f"arn:aws:dynamodb:{REGION}:123456789012:table/{TABLE_NAME}/stream/2026-11-23T00:00:00.000"
)
TTL_IDENTITY = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
_serialize = TypeSerializer().serialize
_deserialize = TypeDeserializer().deserialize
_sequence = iter(range(1_000_000, 10_000_000))


def waiter_image(step_key: str = "approval", **attributes: str) -> dict[str, str]:
    return {
        "RunId": "0b6f7c2a-3a5e-4b8f-9d1c-2e4f6a8b0c1d",
        "StepKey": step_key,
        "SignalName": "approve",
        "CreatedAt": "2026-11-23T10:00:00.000Z",
        **attributes,
    }


DELIVERED = {"DeliveredAt": "2026-11-23T10:00:01.500Z", "PayloadJson": '{"approved": true}'}


def stream_record(
    event_name: str,
    old: dict[str, Any] | None = None,
    new: dict[str, Any] | None = None,
    *,
    by_ttl: bool = False,
) -> dict[str, Any]:
    """A DynamoDB stream record as Lambda hands it over (NEW_AND_OLD_IMAGES)."""
    image = new or old or {}
    change: dict[str, Any] = {
        "ApproximateCreationDateTime": 1795428000,
        "Keys": {"RunId": {"S": image["RunId"]}, "StepKey": {"S": image["StepKey"]}},
        "SequenceNumber": str(next(_sequence)),
        "SizeBytes": 256,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if old is not None:
        change["OldImage"] = {name: _serialize(value) for name, value in old.items()}
    if new is not None:
        change["NewImage"] = {name: _serialize(value) for name, value in new.items()}
    record = {
        "eventID": uuid4().hex,
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": REGION,
        "dynamodb": change,
        "eventSourceARN": STREAM_ARN,
    }
    if by_ttl:
        record["userIdentity"] = TTL_IDENTITY
    return record


@dataclass
class Calls:
    """The Step Functions and EventBridge calls the notifier made, with their arguments."""

    made: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def of(self, operation: str) -> list[dict[str, Any]]:
        return [params for name, params in self.made if name == operation]

    def events(self) -> list[tuple[str, dict[str, Any]]]:
        return [
            (entry["DetailType"], json.loads(entry["Detail"]))
            for params in self.of("PutEvents")
            for entry in params["Entries"]
        ]


@contextmanager
def recording_aws() -> Iterator[Calls]:
    calls = Calls()
    with moto_table():
        notifier._clients.cache_clear()
        for client in notifier._clients():
            client.meta.events.register(
                "provide-client-params",
                lambda params, model, **_: calls.made.append((model.name, dict(params))),
            )
        yield calls
    notifier._clients.cache_clear()


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[Calls]:
    monkeypatch.setenv("EVENT_BUS_NAME", "flowsignals-bus")
    monkeypatch.setenv("TABLE_NAME", TABLE_NAME)
    reset_runtime()
    with recording_aws() as recorded:
        boto3.client("events").create_event_bus(Name="flowsignals-bus")
        yield recorded


def fail_task_calls(code: str, token: str) -> None:
    """Step Functions answers ``code`` to SendTaskSuccess/Failure for ``token``."""

    def answer(params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        # before-call sees the serialised request: the token is in its JSON body.
        if json.loads(params["body"]).get("taskToken") != token:
            return None
        http = AWSResponse("https://states", 400, {}, None)
        return http, {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {}}

    states, _ = notifier._clients()
    states.meta.events.register("before-call.sfn.SendTaskSuccess", answer)
    states.meta.events.register("before-call.sfn.SendTaskFailure", answer)


def run_notifier(*records: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = notifier.notifier_handler(
        {"Records": list(records)}, FakeLambdaContext()
    )
    return result


def test_every_case_in_one_batch(calls: Calls, capsys: pytest.CaptureFixture[str]) -> None:
    waiting = waiter_image("with-token", TaskToken="token-1")
    delivered = {**waiting, **DELIVERED}
    plain = waiter_image("no-token")
    expiring = waiter_image("expiring", TaskToken="token-2", ExpiresAt="2026-11-24T10:00:00.000Z")
    removed = waiter_image("removed", TaskToken="token-3")
    tombstone = waiter_image("tombstone", TaskToken="token-4", **DELIVERED)
    records = [
        stream_record("INSERT", new=waiting),
        stream_record("MODIFY", old=waiting, new=delivered),
        stream_record("MODIFY", old=plain, new={**plain, **DELIVERED}),
        stream_record("MODIFY", old=plain, new={**plain, "SignalName": "renamed"}),
        stream_record("MODIFY", old=delivered, new={**delivered, "TaskToken": "token-9"}),
        stream_record("REMOVE", old=expiring, by_ttl=True),
        stream_record("REMOVE", old=removed),
        stream_record("REMOVE", old=tombstone, by_ttl=True),
    ]

    result = run_notifier(*records)

    assert result == {"batchItemFailures": []}
    # token-9 came to an already delivered waiter (a retried register): it resumes too.
    assert calls.of("SendTaskSuccess") == [
        {"taskToken": "token-1", "output": '{"approved": true}'},
        {"taskToken": "token-9", "output": '{"approved": true}'},
    ]
    failures = calls.of("SendTaskFailure")
    assert [(f["taskToken"], f["error"]) for f in failures] == [
        ("token-2", "FlowSignals.WaiterExpired"),
        ("token-3", "FlowSignals.WaiterRemoved"),
    ]
    signal = {
        "runId": waiting["RunId"],
        "signalName": "approve",
        "createdAt": "2026-11-23T10:00:00.000Z",
        "deliveredAt": "2026-11-23T10:00:01.500Z",
        "waitMs": 1500,
        "deliveredBy": None,
        "failed": False,
        "error": None,
    }
    assert calls.events() == [
        ("Signal Delivered", {**signal, "stepKey": "with-token"}),
        ("Signal Delivered", {**signal, "stepKey": "no-token"}),
        (
            "Waiter Expired",
            {
                "runId": waiting["RunId"],
                "stepKey": "expiring",
                "signalName": "approve",
                "createdAt": "2026-11-23T10:00:00.000Z",
                "expiresAt": "2026-11-24T10:00:00.000Z",
            },
        ),
    ]
    for params in calls.of("PutEvents"):
        assert params["Entries"][0]["Source"] == "flowsignals"
        assert params["Entries"][0]["EventBusName"] == "flowsignals-bus"
    metrics = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line
    ]
    assert [m["SignalWaitMs"] for m in metrics] == [[1500.0, 1500.0]]
    (definition,) = metrics[0]["_aws"]["CloudWatchMetrics"]
    assert definition["Metrics"] == [{"Name": "SignalWaitMs", "Unit": "Milliseconds"}]


@pytest.mark.parametrize("code", ["TaskTimedOut", "TaskDoesNotExist", "InvalidToken"])
def test_a_closed_task_is_skipped_not_retried(calls: Calls, code: str) -> None:
    fail_task_calls(code, "token-closed")
    waiting = waiter_image(TaskToken="token-closed")
    records = [
        stream_record("MODIFY", old=waiting, new={**waiting, **DELIVERED}),
        stream_record("REMOVE", old=waiter_image("gone", TaskToken="token-closed")),
    ]

    assert run_notifier(*records) == {"batchItemFailures": []}
    assert [detail_type for detail_type, _ in calls.events()] == ["Signal Delivered"]
    assert len(calls.of("SendTaskSuccess")) == len(calls.of("SendTaskFailure")) == 1


def test_other_failures_fail_only_their_record(calls: Calls) -> None:
    fail_task_calls("ServiceUnavailable", "token-down")
    failing = waiter_image("failing", TaskToken="token-down")
    fine = waiter_image("fine", TaskToken="token-up")
    failing_record = stream_record("MODIFY", old=failing, new={**failing, **DELIVERED})
    fine_record = stream_record("MODIFY", old=fine, new={**fine, **DELIVERED})

    result = run_notifier(failing_record, fine_record)

    assert result == {
        "batchItemFailures": [{"itemIdentifier": failing_record["dynamodb"]["SequenceNumber"]}]
    }
    assert calls.of("SendTaskSuccess")[-1] == {
        "taskToken": "token-up",
        "output": '{"approved": true}',
    }
    assert [detail["stepKey"] for _, detail in calls.events()] == ["fine"]


def test_a_rejected_event_fails_its_record(calls: Calls, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENT_BUS_NAME", "no-such-bus")
    plain = waiter_image()
    record = stream_record("MODIFY", old=plain, new={**plain, **DELIVERED})

    result = run_notifier(record)

    assert result["batchItemFailures"] == [{"itemIdentifier": record["dynamodb"]["SequenceNumber"]}]


def test_an_event_entry_eventbridge_did_not_take_fails_its_record(calls: Calls) -> None:
    """PutEvents answers 200 even when an entry failed; only FailedEntryCount tells."""

    def partly_failed(**_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        entry = {"ErrorCode": "InternalFailure", "ErrorMessage": "try again"}
        http = AWSResponse("https://events", 200, {}, None)
        return http, {"FailedEntryCount": 1, "Entries": [entry], "ResponseMetadata": {}}

    _, events = notifier._clients()
    events.meta.events.register("before-call.events.PutEvents", partly_failed)
    plain = waiter_image()
    record = stream_record("MODIFY", old=plain, new={**plain, **DELIVERED})

    result = run_notifier(record)

    assert result["batchItemFailures"] == [{"itemIdentifier": record["dynamodb"]["SequenceNumber"]}]


def test_end_to_end_from_the_handlers_to_send_task_success(
    calls: Calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    # moto 5.2's DescribeStream answers "Not yet implemented", so the stream record is built
    # from the table's row before and after the delivery (what NEW_AND_OLD_IMAGES carries).
    from flowsignals.lambdas import handlers

    monkeypatch.setenv("TABLE_NAME", TABLE_NAME)
    reset_runtime()
    run = str(uuid4())
    handlers.register_handler(
        {"runId": run, "stepKey": "approval", "signalName": "approve", "taskToken": "sfn-token"},
        FakeLambdaContext(),
    )
    before = stored_row(run, "approval")
    deliver = http_api_event(
        "POST /runs/{runId}/signals/{signalName}",
        {"runId": run, "signalName": "approve"},
        body='{"approved": true, "by": "ana"}',
    )
    assert handlers.deliver_handler(deliver, FakeLambdaContext())["statusCode"] == 200
    after = stored_row(run, "approval")
    reset_runtime()

    assert run_notifier(stream_record("MODIFY", old=before, new=after)) == {"batchItemFailures": []}

    assert calls.of("SendTaskSuccess") == [
        {"taskToken": "sfn-token", "output": '{"approved": true, "by": "ana"}'}
    ]
    ((detail_type, detail),) = calls.events()
    assert detail_type == "Signal Delivered"
    assert (detail["runId"], detail["stepKey"]) == (run, "approval")
    assert detail["waitMs"] >= 0


def stored_row(run: str, step_key: str) -> dict[str, Any]:
    """The table's row as Python values (stream_record serialises them back)."""
    item = boto3.client("dynamodb").get_item(
        TableName=TABLE_NAME, Key={"RunId": {"S": run}, "StepKey": {"S": step_key}}
    )["Item"]
    return {name: _deserialize(value) for name, value in item.items()}


def test_a_failure_signal_fails_the_task_and_says_so_in_the_event(calls: Calls) -> None:
    waiting = waiter_image("review", TaskToken="token-f")
    rejected = {
        **waiting,
        "DeliveredAt": "2026-11-23T10:00:01.500Z",
        "FailureError": "Rejected",
        "FailureCause": "Budget exceeded",
        "DeliveredBy": "arn:aws:iam::123456789012:user/ana",
    }
    bare = {**waiter_image("bare", TaskToken="token-g"), **DELIVERED}
    bare = {k: v for k, v in bare.items() if k != "PayloadJson"} | {"FailureError": "Timeout"}

    result = run_notifier(
        stream_record("MODIFY", old=waiting, new=rejected),
        stream_record("MODIFY", old=waiter_image("bare", TaskToken="token-g"), new=bare),
    )

    assert result == {"batchItemFailures": []}
    assert calls.of("SendTaskSuccess") == []
    assert calls.of("SendTaskFailure") == [
        {"taskToken": "token-f", "error": "Rejected", "cause": "Budget exceeded"},
        {"taskToken": "token-g", "error": "Timeout"},
    ]
    details = [detail for _, detail in calls.events()]
    assert [(d["failed"], d["error"], d["deliveredBy"]) for d in details] == [
        (True, "Rejected", "arn:aws:iam::123456789012:user/ana"),
        (True, "Timeout", None),
    ]


def test_rows_copied_into_the_table_resume_nothing_again(calls: Calls) -> None:
    """A table migration (infra/migrate_table.py) or a restore inserts delivered rows whose
    tasks the old table's stream already resumed; a later change of a copied row counts."""
    copied = {**waiter_image("copied", TaskToken="token-1"), **DELIVERED}
    failed = waiter_image("failed", TaskToken="token-2", DeliveredAt="2026-11-23T10:00:01.500Z")
    waiting = waiter_image("waiting", TaskToken="token-3")
    result = run_notifier(
        stream_record("INSERT", new=copied),
        stream_record("INSERT", new={**failed, "FailureError": "Rejected"}),
        stream_record("INSERT", new=waiting),
        stream_record("MODIFY", old=waiting, new={**waiting, **DELIVERED}),
    )
    assert result == {"batchItemFailures": []}
    assert calls.of("SendTaskSuccess") == [{"taskToken": "token-3", "output": '{"approved": true}'}]
    assert calls.of("SendTaskFailure") == []
    assert [detail["stepKey"] for _, detail in calls.events()] == ["waiting"]


def test_buffered_signal_rows_and_a_token_already_resumed_do_nothing(calls: Calls) -> None:
    early = {
        "RunId": "0b6f7c2a-3a5e-4b8f-9d1c-2e4f6a8b0c1d",
        "StepKey": "\x1fbuffered\x1fabc\x1fkclick-1",
        "BufferedSignalName": "approve",
        "BufferedAt": "2026-11-23T10:00:00.000Z",
        "BufferedUntil": "2026-11-23T11:00:00.000Z",
        "PayloadJson": "{}",
    }
    delivered = {**waiter_image(TaskToken="token-1"), **DELIVERED}
    result = run_notifier(
        stream_record("INSERT", new=early),
        stream_record("REMOVE", old=early, by_ttl=True),
        stream_record("REMOVE", old=early),
        stream_record("MODIFY", old=delivered, new={**delivered, "SignalName": "same-token"}),
    )
    assert result == {"batchItemFailures": []}
    assert calls.made == []


def test_a_quorum_resumes_the_task_with_its_approvals(calls: Calls) -> None:
    approvals = [
        {"By": "ana@example.com", "At": "2026-11-23T10:00:01.000Z", "PayloadJson": '{"ok": 1}'},
        {"By": "bob@example.com", "At": "2026-11-23T10:00:01.500Z", "PayloadJson": '{"ok": 2}'},
    ]
    waiting = waiter_image("pay", TaskToken="token-1", QuorumSize="2")
    pending = {**waiting, "Approvals": approvals[:1], "ApprovedBy": ["email:ana@example.com"]}
    complete = {**pending, **DELIVERED, "PayloadJson": '{"ok": 2}', "Approvals": approvals}
    not_an_object = waiter_image("list", TaskToken="token-2")
    as_it_is = {**not_an_object, **DELIVERED, "PayloadJson": "[1, 2]", "Approvals": approvals}

    result = run_notifier(
        stream_record("MODIFY", old=waiting, new=pending),  # an approval short of the quorum
        stream_record("MODIFY", old=pending, new=complete),
        stream_record("MODIFY", old=not_an_object, new=as_it_is),
    )

    assert result == {"batchItemFailures": []}
    first, second = calls.of("SendTaskSuccess")
    assert first["taskToken"] == "token-1"
    assert json.loads(first["output"]) == {
        "ok": 2,
        "approvals": [
            {"by": "ana@example.com", "at": "2026-11-23T10:00:01.000Z", "payload": {"ok": 1}},
            {"by": "bob@example.com", "at": "2026-11-23T10:00:01.500Z", "payload": {"ok": 2}},
        ],
    }
    assert second == {"taskToken": "token-2", "output": "[1, 2]"}
    assert [detail["stepKey"] for _, detail in calls.events()] == ["pay", "list"]
