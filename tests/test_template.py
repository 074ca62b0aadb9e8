"""template.yaml wires what docs/contract.md and docs/design.md describe: each route to its
handler, IAM on every route, one least-privilege policy per function."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

from template_yaml import TEMPLATE, functions, http_routes, load_template

ROOT = TEMPLATE.parent
TABLE_ARN = {"GetAtt": "WaiterTable.Arn"}
DECISION_INDEX_ARN = {"Sub": "${WaiterTable.Arn}/index/RunId-SignalName-local-index"}
SIGNAL_INDEX_ARN = {"Sub": "${WaiterTable.Arn}/index/RunId-SignalName-index"}

EXPECTED_ROUTES = {
    "PUT /runs/{runId}/waiters/{stepKey}": "flowsignals.lambdas.handlers.register_handler",
    "GET /runs/{runId}/waiters/{stepKey}": "flowsignals.lambdas.handlers.get_handler",
    "DELETE /runs/{runId}/waiters/{stepKey}": "flowsignals.lambdas.handlers.remove_handler",
    "GET /runs/{runId}/waiters": "flowsignals.lambdas.handlers.list_handler",
    "POST /runs/{runId}/signals/{signalName}": "flowsignals.lambdas.handlers.deliver_handler",
    "POST /runs/{runId}/signals/{signalName}/failure": (
        "flowsignals.lambdas.handlers.deliver_handler"
    ),
    "GET /runs/{runId}/signals": "flowsignals.lambdas.handlers.signals_handler",
    "POST /runs/{runId}/signals/{signalName}/links": "flowsignals.lambdas.handlers.links_handler",
    "GET /approvals/{token}": "flowsignals.lambdas.handlers.approvals_handler",
    "HEAD /approvals/{token}": "flowsignals.lambdas.handlers.approvals_handler",
    "POST /approvals/{token}": "flowsignals.lambdas.handlers.approvals_handler",
}
# The pages a person opens from a message: the signed token is the credential.
PUBLIC_ROUTES = {"GET /approvals/{token}", "HEAD /approvals/{token}", "POST /approvals/{token}"}
LINK_KEY = {"Ref": "LinkSigningKey"}
# Each function's grants: {action: resources}.
EXPECTED_GRANTS = {
    "RegisterFunction": {
        "dynamodb:UpdateItem": [TABLE_ARN],
        "dynamodb:Query": [TABLE_ARN],
        "dynamodb:DeleteItem": [TABLE_ARN],
        "dynamodb:GetItem": [TABLE_ARN],
    },
    "DeliverFunction": {
        # The local index only: deliveries decide on consistent reads of their signal's rows.
        "dynamodb:Query": [DECISION_INDEX_ARN],
        "dynamodb:UpdateItem": [TABLE_ARN],
        "dynamodb:PutItem": [TABLE_ARN],
        "dynamodb:GetItem": [TABLE_ARN],
        "dynamodb:DeleteItem": [TABLE_ARN],
    },
    "GetFunction": {"dynamodb:GetItem": [TABLE_ARN]},
    "RemoveFunction": {"dynamodb:DeleteItem": [TABLE_ARN]},
    "ListFunction": {
        "dynamodb:Query": [TABLE_ARN, SIGNAL_INDEX_ARN],
        "dynamodb:BatchGetItem": [TABLE_ARN],
    },
    "SignalsFunction": {"dynamodb:Query": [TABLE_ARN]},
    # Each link function may read the one secret that signs links, and no other.
    "LinksFunction": {
        "dynamodb:PutItem": [TABLE_ARN],
        "secretsmanager:GetSecretValue": [LINK_KEY],
    },
    "ApprovalsFunction": {
        "dynamodb:GetItem": [TABLE_ARN],
        "dynamodb:Query": [DECISION_INDEX_ARN],
        "dynamodb:UpdateItem": [TABLE_ARN],
        "secretsmanager:GetSecretValue": [LINK_KEY],
    },
    "NotifierFunction": {
        "states:SendTaskSuccess": [
            {"Sub": "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:*"}
        ],
        "states:SendTaskFailure": [
            {"Sub": "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:*"}
        ],
        "events:PutEvents": [
            {
                "Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}"
                ":event-bus/${EventBusName}"
            }
        ],
        "sqs:SendMessage": [{"GetAtt": "NotifierDeadLetterQueue.Arn"}],
    },
}


def test_every_route_is_wired_to_its_handler_and_the_handler_exists() -> None:
    routes = {route: f"{module}.{name}" for route, (module, name) in http_routes().items()}
    assert routes == EXPECTED_ROUTES
    for handler in routes.values():
        module, _, name = handler.rpartition(".")
        assert callable(getattr(importlib.import_module(module), name))


def test_every_machine_route_is_on_the_iam_authorized_api() -> None:
    resources = load_template()["Resources"]
    api = resources["HttpApi"]
    assert api["Type"] == "AWS::Serverless::HttpApi"
    assert api["Properties"]["Auth"] == {
        "EnableIamAuthorizer": True,
        "DefaultAuthorizer": "AWS_IAM",
    }
    for function in functions().values():
        for event in function["Properties"]["Events"].values():
            if event["Type"] != "HttpApi":
                continue
            properties = event["Properties"]
            public = f"{properties['Method']} {properties['Path']}" in PUBLIC_ROUTES
            api_id = "ApprovalsApi" if public else "HttpApi"
            assert properties["ApiId"] == {"Ref": api_id}
            assert "Auth" not in properties, "no route may opt out of its API's auth"


def test_the_approval_pages_are_alone_on_a_throttled_api_without_authorizer() -> None:
    resources = load_template()["Resources"]
    api = resources["ApprovalsApi"]["Properties"]
    assert "Auth" not in api, "a person opening a link has no AWS identity"
    throttling = api["DefaultRouteSettings"]
    assert 0 < throttling["ThrottlingRateLimit"] <= throttling["ThrottlingBurstLimit"] <= 100
    on_it = {
        f"{event['Properties']['Method']} {event['Properties']['Path']}"
        for function in functions().values()
        for event in function["Properties"]["Events"].values()
        if event["Properties"].get("ApiId") == {"Ref": "ApprovalsApi"}
    }
    assert on_it == PUBLIC_ROUTES


def test_links_are_signed_with_a_generated_secret_and_point_at_the_approvals_api() -> None:
    resources = load_template()["Resources"]
    secret = resources["LinkSigningKey"]
    assert secret["Type"] == "AWS::SecretsManager::Secret"
    generated = secret["Properties"]["GenerateSecretString"]
    assert generated["GenerateStringKey"] == "key" and generated["PasswordLength"] >= 32
    assert '"keyId"' in generated["SecretStringTemplate"]
    for name in ("LinksFunction", "ApprovalsFunction"):
        variables = resources[name]["Properties"]["Environment"]["Variables"]
        assert variables["LINK_SECRET_ID"] == LINK_KEY
    base = resources["LinksFunction"]["Properties"]["Environment"]["Variables"]["LINK_BASE_URL"]
    assert base["If"][0] == "HasLinkBaseUrl"
    assert "${ApprovalsApi}" in base["If"][2]["Sub"]


def grants(function: dict[str, Any]) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for policy in function["Properties"]["Policies"]:
        for statement in policy["Statement"]:
            assert statement["Effect"] == "Allow"
            resources = statement["Resource"]
            for action in (
                [statement["Action"]]
                if isinstance(statement["Action"], str)
                else statement["Action"]
            ):
                found.setdefault(action, []).extend(
                    resources if isinstance(resources, list) else [resources]
                )
    return found


def test_each_function_has_only_the_grants_its_operation_needs() -> None:
    assert {name: grants(function) for name, function in functions().items()} == EXPECTED_GRANTS


def test_the_notifier_reads_the_stream_with_partial_failures_and_a_dead_letter_queue() -> None:
    (event,) = functions()["NotifierFunction"]["Properties"]["Events"].values()
    assert event["Type"] == "DynamoDB"
    stream = event["Properties"]
    assert stream["Stream"] == {"GetAtt": "WaiterTable.StreamArn"}
    assert stream["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert stream["BisectBatchOnFunctionError"] is True
    assert stream["MaximumRetryAttempts"] > 0 and stream["BatchSize"] > 0
    assert stream["DestinationConfig"]["OnFailure"] == {
        "Type": "SQS",
        "Destination": {"GetAtt": "NotifierDeadLetterQueue.Arn"},
    }


def test_the_example_state_machine_waits_with_a_task_token() -> None:
    machine = load_template()["Resources"]["ApprovalExample"]["Properties"]
    states = machine["Definition"]["States"]
    task = states["WaitForApproval"]
    assert task["Resource"] == {
        "Sub": "arn:${AWS::Partition}:states:::lambda:invoke.waitForTaskToken"
    }
    assert task["Parameters"]["FunctionName"] == {"GetAtt": "RegisterFunction.Arn"}
    assert task["Parameters"]["Payload"]["taskToken.$"] == "$$.Task.Token"
    assert task["TimeoutSeconds"] == task["Parameters"]["Payload"]["timeoutSeconds"]
    caught = {error for catch in task["Catch"] for error in catch["ErrorEquals"]}
    assert {"FlowSignals.WaiterExpired", "FlowSignals.WaiterRemoved", "Rejected"} <= caught


def test_the_example_parks_mints_links_and_sends_them_before_it_waits() -> None:
    machine = load_template()["Resources"]["ApprovalExample"]["Properties"]
    states = machine["Definition"]["States"]
    order, name = [], machine["Definition"]["StartAt"]
    while name != "WaitForApproval":
        order.append(name)
        name = states[name]["Next"]
    assert order == ["Park", "MintLinks", "SendLinks"]
    park, wait = states["Park"]["Parameters"], states["WaitForApproval"]["Parameters"]
    # The same waiter: a click before the task waits finds the step parked.
    assert park["Payload"] == {k: v for k, v in wait["Payload"].items() if k != "taskToken.$"}
    mint = states["MintLinks"]["Parameters"]
    assert mint["FunctionName"] == {"GetAtt": "LinksFunction.Arn"}
    assert mint["Payload"]["signalName"] == park["Payload"]["signalName"]
    assert mint["Payload"]["expiresInSeconds"] <= states["WaitForApproval"]["TimeoutSeconds"]
    send = states["SendLinks"]
    assert send["Resource"] == {"Sub": "arn:${AWS::Partition}:states:::sns:publish"}
    message = send["Parameters"]["Message.$"]
    assert "$.approvalLinks.links.approve" in message and "$.approvalLinks.links.reject" in message
    topic = machine["DefinitionSubstitutions"]["ApprovalTopic"]
    assert send["Parameters"]["TopicArn"] == "${ApprovalTopic}"
    assert topic == {
        "If": ["CreateApprovalTopic", {"Ref": "ApprovalTopic"}, {"Ref": "ApprovalTopicArn"}]
    }
    (publish,) = [p for p in machine["Policies"] if "Statement" in p]
    assert publish["Statement"] == [{"Effect": "Allow", "Action": "sns:Publish", "Resource": topic}]


def test_the_example_decides_on_any_payload_and_catches_a_rejection() -> None:
    """A delivery of {} must not end the execution with States.Runtime: the Choice checks
    that approved is present and a boolean before comparing it."""
    states = load_template()["Resources"]["ApprovalExample"]["Properties"]["Definition"]["States"]
    task = states["WaitForApproval"]
    decide = states[task["Next"]]
    (rule,) = decide["Choices"]
    checks = [(c["Variable"], next(k for k in c if k != "Variable")) for c in rule["And"]]
    assert checks == [
        ("$.approval.approved", "IsPresent"),
        ("$.approval.approved", "IsBoolean"),
        ("$.approval.approved", "BooleanEquals"),
    ]
    assert states[rule["Next"]]["Type"] == "Succeed"
    assert states[decide["Default"]]["Type"] == "Fail"
    (rejection,) = [c for c in task["Catch"] if c["ErrorEquals"] == ["Rejected"]]
    assert states[rejection["Next"]] == {
        "Type": "Fail",
        "Error": "Rejected",
        "Cause": "The approval was rejected",
    }


def test_every_function_ships_its_code_compiled_by_functions_makefile() -> None:
    for name, function in functions().items():
        assert function["Metadata"] == {"BuildMethod": "makefile"}, name
    assert load_template()["Globals"]["Function"]["CodeUri"] == "functions/"
    assert "build-%:" in (ROOT / "functions" / "Makefile").read_text()


def test_globals_and_outputs() -> None:
    template = load_template()
    function_globals = template["Globals"]["Function"]
    assert function_globals["Runtime"] == "python3.13"
    assert function_globals["Architectures"] == ["arm64"]
    assert function_globals["Tracing"] == "Active"
    assert function_globals["Environment"]["Variables"]["TABLE_NAME"] == {"Ref": "WaiterTable"}
    assert {"TableDeletionProtection", "RetentionDays", "LogLevel"} <= set(template["Parameters"])
    outputs = set(template["Outputs"])
    assert {"ApiUrl", "WaiterTableName"} <= outputs
    assert {f"{name}Arn" for name in functions()} <= outputs


def test_the_dependencies_layer_carries_what_the_package_needs_but_not_the_runtime() -> None:
    template = load_template()
    assert template["Globals"]["Function"]["Layers"] == [{"Ref": "DependenciesLayer"}]
    layer = template["Resources"]["DependenciesLayer"]
    assert layer["Properties"]["ContentUri"] == "infra/layer/"
    assert layer["Metadata"] == {"BuildMethod": "makefile", "BuildArchitecture": "arm64"}
    assert not (ROOT / "functions" / "requirements.txt").exists(), "one copy: the layer"

    lines = (ROOT / "infra" / "layer" / "requirements.txt").read_text().splitlines()
    pins = dict(line.split("==") for line in lines if line and not line.startswith("#"))
    # Everything the installed package needs outside the runtime's boto3 stack is pinned...
    needed = {"aws-lambda-powertools", "pydantic", "pydantic-core"}
    needed |= {"annotated-types", "typing-extensions", "typing-inspection"}
    assert set(pins) == needed
    # ...and nothing the python3.13 runtime already has is bundled again.
    assert not set(pins) & {
        "boto3",
        "botocore",
        "jmespath",
        "urllib3",
        "python-dateutil",
        "s3transfer",
    }


def test_retention_days_is_a_whole_number_of_days_at_deploy_time() -> None:
    parameter = load_template()["Parameters"]["RetentionDays"]
    pattern = re.compile(parameter["AllowedPattern"])
    for accepted in ("0", "7", "365", "99999"):
        assert pattern.fullmatch(accepted), accepted
    for refused in ("1.5", "-1", "07", " 7", "7 ", "1e3", "", "100000"):
        assert not pattern.fullmatch(refused), refused
    assert pattern.fullmatch(parameter["Default"])


def test_the_alarms_an_operator_needs() -> None:
    template = load_template()
    alarms = {
        name: resource["Properties"]
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::CloudWatch::Alarm"
    }
    assert set(alarms) == {
        "NotifierDeadLetterAlarm",
        "NotifierIteratorAgeAlarm",
        "FunctionErrorsAlarm",
        "FunctionThrottlesAlarm",
        "Api5xxAlarm",
        "DashboardApi5xxAlarm",
        "DynamoDBThrottleAlarm",
    }
    dead_letters = alarms["NotifierDeadLetterAlarm"]
    assert dead_letters["Dimensions"][0]["Value"] == {"GetAtt": "NotifierDeadLetterQueue.QueueName"}
    assert (dead_letters["Threshold"], dead_letters["ComparisonOperator"]) == (
        0,
        "GreaterThanThreshold",
    )
    age = alarms["NotifierIteratorAgeAlarm"]
    assert (age["MetricName"], age["Threshold"]) == ("IteratorAge", 300_000)  # 5 minutes
    for name in ("FunctionErrorsAlarm", "FunctionThrottlesAlarm"):
        watched = {
            query["MetricStat"]["Metric"]["Dimensions"][0]["Value"]["Ref"]
            for query in alarms[name]["Metrics"]
            if "MetricStat" in query
        }
        assert watched == set(functions()), f"{name} must watch every function"
    for alarm, api in (("Api5xxAlarm", "HttpApi"), ("DashboardApi5xxAlarm", "DashboardApi")):
        assert alarms[alarm]["MetricName"] == "5xx"
        assert alarms[alarm]["Dimensions"] == [{"Name": "ApiId", "Value": {"Ref": api}}]
    assert template["Resources"]["DashboardApi5xxAlarm"]["Condition"] == "HasDashboard"
    notify = {"If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
    assert all(alarm["AlarmActions"] == notify for alarm in alarms.values())
    assert template["Parameters"]["AlarmTopicArn"]["Default"] == ""


def test_the_layer_pins_agree_with_the_locked_dev_environment() -> None:
    """The functions run with the versions the tests ran with."""

    def pins(path: Path) -> dict[str, str]:
        lines = path.read_text().splitlines()
        pairs = (line.split("==") for line in lines if "==" in line and not line.startswith("#"))
        return {re.sub(r"[-_.]+", "-", name).lower(): version for name, version in pairs}

    layer, locked = (
        pins(ROOT / "infra" / "layer" / "requirements.txt"),
        pins(ROOT / "constraints.txt"),
    )
    assert {name: locked.get(name) for name in layer} == layer
