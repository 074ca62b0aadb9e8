"""One fresh interpreter of infra/cold_start.py, run in a Lambda-like environment. It imports
nothing beyond what a Lambda runtime has loaded before the handler (the standard library's
json, os, sys, time), so its clock starts where a cold start's init starts.

    cold_start_child.py import MODULE OUT            # seconds to import MODULE
    cold_start_child.py first minimal|deliver OUT    # import + first request (event on stdin)
    cold_start_child.py warm minimal|deliver OUT N   # then N requests, DynamoDB stubbed

OUT is a file for the JSON result: stdout is the function's log (metrics are printed there).
"""

from __future__ import annotations

import copy
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


class Context:
    """The Lambda context attributes the handlers read."""

    function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "flowsignals-bench")
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
    aws_request_id = "00000000-0000-4000-8000-000000000000"
    log_group_name = f"/aws/lambda/{function_name}"
    log_stream_name = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


def minimal_handler() -> Handler:
    """The baseline: a bare boto3 handler making one conditional UpdateItem."""
    import boto3

    client = boto3.client("dynamodb")
    table = os.environ["TABLE_NAME"]

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        client.update_item(
            TableName=table,
            # A row of its own (the request id is fresh), apart from the delivery's run.
            Key={"RunId": {"S": event["requestContext"]["requestId"]}, "StepKey": {"S": "minimal"}},
            UpdateExpression="SET DeliveredAt = :now",
            ConditionExpression="attribute_not_exists(DeliveredAt)",
            ExpressionAttributeValues={":now": {"S": time.strftime("%Y-%m-%dT%H:%M:%SZ")}},
        )
        return {"statusCode": 200, "body": '{"delivered": true}'}

    return handler


def deliver_handler() -> Handler:
    from flowsignals.lambdas.handlers import deliver_handler

    handler: Handler = deliver_handler
    return handler


HANDLERS = {"minimal": minimal_handler, "deliver": deliver_handler}


def stub_dynamodb_after_first_call(target: str) -> Callable[[], None]:
    """Record each DynamoDB operation's first HTTP answer; once the returned function is
    called, answer every later request with it, without sending (before-send returns it).
    Serializing, signing and parsing still run, as they do on AWS."""
    import boto3
    from botocore.awsrequest import AWSResponse

    recorded: dict[str, dict[str, Any]] = {}
    stubbing = False

    class Body:
        def __init__(self, data: bytes) -> None:
            self.data = data

        def stream(self, **_: Any) -> Any:
            yield self.data

    def record(response_dict: dict[str, Any] | None, event_name: str, **_: Any) -> None:
        if response_dict is not None:
            recorded.setdefault(event_name.rpartition(".")[2], response_dict)

    def replay(request: Any, event_name: str, **_: Any) -> AWSResponse | None:
        answer = recorded.get(event_name.rpartition(".")[2]) if stubbing else None
        if answer is None:
            return None
        return AWSResponse(
            request.url, answer["status_code"], answer["headers"], Body(answer["body"])
        )

    def start() -> None:
        nonlocal stubbing
        stubbing = True

    # A session's handlers reach every client created from it later: boto3's default one for
    # the minimal handler, the package's own botocore session for ours.
    if target == "minimal":
        boto3.setup_default_session()
        assert boto3.DEFAULT_SESSION is not None
        events = boto3.DEFAULT_SESSION.events
    else:
        from flowsignals.backends.aws import aws_session

        events = aws_session().get_component("event_emitter")
    events.register("response-received.dynamodb", record)
    events.register("before-send.dynamodb", replay)
    return start


def time_aws_calls() -> list[float]:
    """The time spent inside AWS calls (botocore's, stubbed or not) since the list's one
    number was last set to 0: what a request spends apart from them is its own code's."""
    from botocore.client import BaseClient

    spent = [0.0]
    make_api_call = BaseClient._make_api_call

    def timed(self: Any, operation: str, params: dict[str, Any]) -> Any:
        began = time.perf_counter()
        try:
            return make_api_call(self, operation, params)
        finally:
            spent[0] += time.perf_counter() - began

    BaseClient._make_api_call = timed
    return spent


def rss_kb() -> int:
    """The process's peak resident memory. Not ru_maxrss: Linux keeps that across exec, so
    it would report the parent's size when the parent is the larger."""
    with open("/proc/self/status") as status:
        peak = next(line for line in status if line.startswith("VmHWM:"))
    return int(peak.split()[1])


def main() -> None:
    kind, target, out = sys.argv[1:4]
    result: dict[str, Any]
    if kind == "import":
        start = time.perf_counter()
        __import__(target)
        result = {"seconds": time.perf_counter() - start}
    else:
        event = json.load(sys.stdin)
        stub = stub_dynamodb_after_first_call(target) if kind == "warm" else None
        start = time.perf_counter()
        handler = HANDLERS[target]()
        initialized = time.perf_counter()  # Lambda's Init phase ends here
        response = handler(copy.deepcopy(event), Context())
        result = {
            "seconds": time.perf_counter() - start,
            "init_seconds": initialized - start,
            "status": response["statusCode"],
            "rss_kb": rss_kb(),
        }
        if stub is not None:
            stub()
            in_calls = time_aws_calls()
            events = [copy.deepcopy(event) for _ in range(int(sys.argv[4]))]
            samples, own = [], []
            for each in events:
                in_calls[0] = 0.0
                began = time.perf_counter()
                answer = handler(each, Context())
                spent = time.perf_counter() - began
                samples.append(spent)
                own.append(spent - in_calls[0])
                assert answer["statusCode"] == response["statusCode"], answer
            result["samples"] = samples
            result["own_samples"] = own
    with open(out, "w") as file:
        json.dump(result, file)


if __name__ == "__main__":
    main()
