"""The HTTP API (docs/contract.md, HTTP API) through the handlers template.yaml names, with
realistic API Gateway HTTP API v2 events, on moto."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from test_dynamodb import dynamodb_answers

from conftest import TABLE_NAME, reset_runtime, silent_endpoint
from flowsignals.lambdas import runtime
from flowsignals.testing import FakeLambdaContext, http_api_event
from template_yaml import load_handler

PROBLEM = "application/problem+json"
TOKEN = "AAAAKgAAAAIAAAAAAAAAAZ-secret-task-token"


class Answer:
    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw
        self.status: int = raw["statusCode"]
        self.headers = {name.lower(): value for name, value in raw.get("headers", {}).items()}
        self.text: str = raw.get("body") or ""

    @property
    def json(self) -> Any:
        return json.loads(self.text)

    @property
    def content_type(self) -> str:
        return str(self.headers.get("content-type", ""))


def call_route(route: str, parameters: dict[str, str], **request: Any) -> Answer:
    """Call the handler template.yaml names for the route with an HTTP API v2 event."""
    handler = load_handler(route)
    return Answer(handler(http_api_event(route, parameters, **request), FakeLambdaContext()))


@pytest.fixture
def api(fresh_runtime: Any) -> Callable[..., Answer]:
    """Call a route on moto: ``api("PUT /runs/{runId}/waiters/{stepKey}", {...}, body=...)``."""
    return call_route


REGISTER = "PUT /runs/{runId}/waiters/{stepKey}"
GET = "GET /runs/{runId}/waiters/{stepKey}"
DELETE = "DELETE /runs/{runId}/waiters/{stepKey}"
LIST = "GET /runs/{runId}/waiters"
DELIVER = "POST /runs/{runId}/signals/{signalName}"
FAILURE = "POST /runs/{runId}/signals/{signalName}/failure"
JSON_HEADERS = {"Content-Type": "application/json"}
WAITER_FIELDS = {"runId", "stepKey", "signalName", "createdAt", "expiresAt", "deliveredAt"} | {
    "payload",
    "failure",
    "deliveredBy",
    "state",
    "deciders",
    "quorum",
    "approvals",
}
LATER = "2030-01-01T00:00:00Z"


def register(api: Callable[..., Answer], run: str, step: str, **body: Any) -> Answer:
    return api(
        REGISTER, {"runId": run, "stepKey": step}, body=json.dumps(body), headers=JSON_HEADERS
    )


def deliver(api: Callable[..., Answer], run: str, name: str, body: Any = None, **kw: Any) -> Answer:
    return api(DELIVER, {"runId": run, "signalName": name}, body=body, **kw)


def assert_problem(answer: Answer, status: int, code: str) -> dict[str, Any]:
    assert answer.status == status, answer.text
    assert answer.content_type == PROBLEM
    problem: dict[str, Any] = answer.json
    assert problem["type"] == "about:blank"
    assert problem["status"] == status
    assert problem["code"] == code
    assert problem["title"] and problem["detail"]
    return problem


@pytest.fixture
def run() -> str:
    return str(uuid4())


# --- the happy path ------------------------------------------------------------------------


def test_register_get_deliver_list_remove(api: Callable[..., Answer], run: str) -> None:
    registered = register(api, run, "approve-step", signalName="approve", timeoutSeconds=3600)
    assert registered.status == 200 and registered.content_type == "application/json"
    waiter = registered.json
    assert set(waiter) == WAITER_FIELDS
    assert waiter["runId"] == run and waiter["stepKey"] == "approve-step"
    assert waiter["state"] == "Waiting" and waiter["payload"] is None
    created = datetime.fromisoformat(waiter["createdAt"])
    assert waiter["createdAt"].endswith("Z") and len(waiter["createdAt"]) == 24
    # The timeout counts from the request; the store stamps createdAt a moment later.
    timeout = datetime.fromisoformat(waiter["expiresAt"]) - created
    assert timedelta(hours=1) - timedelta(seconds=1) < timeout <= timedelta(hours=1)

    delivered = deliver(api, run, "approve", '{"approved": true, "by": "ana"}')
    assert delivered.status == 200
    assert delivered.json == {
        "delivered": True,
        "stepKey": "approve-step",
        "deliveredAt": delivered.json["deliveredAt"],
        "replayed": False,
    }

    read = api(GET, {"runId": run, "stepKey": "approve-step"})
    assert read.status == 200
    assert read.json["payload"] == {"approved": True, "by": "ana"}
    assert read.json["state"] == "Delivered"
    assert read.json["deliveredAt"] == delivered.json["deliveredAt"]

    listed = api(LIST, {"runId": run})
    assert listed.status == 200 and listed.json == {"waiters": [read.json], "nextToken": None}

    removed = api(DELETE, {"runId": run, "stepKey": "approve-step"})
    assert removed.status == 204 and removed.text == ""
    assert api(DELETE, {"runId": run, "stepKey": "approve-step"}).status == 204
    assert_problem(api(GET, {"runId": run, "stepKey": "approve-step"}), 404, "NotFound")
    assert api(LIST, {"runId": run}).json == {"waiters": [], "nextToken": None}


def test_register_with_expires_at_and_the_expired_state(
    api: Callable[..., Answer], run: str
) -> None:
    past = "2020-01-01T00:00:00.123456+02:00"
    answer = register(api, run, "s", signalName="go", expiresAt=past)
    assert answer.status == 200
    assert answer.json["expiresAt"] == "2019-12-31T22:00:00.123Z"
    assert answer.json["state"] == "Expired"


def test_deliver_status_matrix(api: Callable[..., Answer], run: str) -> None:
    assert_problem(deliver(api, run, "approve", "{}"), 404, "NotFound")

    register(api, run, "late", signalName="late", expiresAt="2020-01-01T00:00:00Z")
    gone = assert_problem(deliver(api, run, "late", "{}"), 410, "Expired")
    assert gone["stepKey"] == "late" and gone["expiresAt"] == "2020-01-01T00:00:00.000Z"

    register(api, run, "s", signalName="approve")
    first = deliver(api, run, "approve", '"yes"')
    conflict = assert_problem(deliver(api, run, "approve", '"no"'), 409, "AlreadyDelivered")
    assert conflict["stepKey"] == "s" and conflict["deliveredAt"] == first.json["deliveredAt"]
    assert api(GET, {"runId": run, "stepKey": "s"}).json["payload"] == "yes"


def test_idempotency_key_header_replays(api: Callable[..., Answer], run: str) -> None:
    register(api, run, "a", signalName="approve")
    register(api, run, "b", signalName="approve")
    key = {"Idempotency-Key": "click-42"}

    first = deliver(api, run, "approve", '{"n": 1}', headers=key)
    retry = deliver(api, run, "approve", '{"n": 1}', headers=key)
    other = deliver(api, run, "approve", '{"n": 2}', headers={"idempotency-key": "click-43"})

    assert first.status == retry.status == other.status == 200
    assert retry.json == {**first.json, "replayed": True}
    assert (first.json["stepKey"], other.json["stepKey"]) == ("a", "b")


@pytest.mark.parametrize("body", [None, "", "  \n\t "])
def test_an_empty_body_delivers_an_empty_object(
    api: Callable[..., Answer], run: str, body: str | None
) -> None:
    register(api, run, "s", signalName="go")
    assert deliver(api, run, "go", body).status == 200
    assert api(GET, {"runId": run, "stepKey": "s"}).json["payload"] == {}


def test_a_base64_body_is_decoded(api: Callable[..., Answer], run: str) -> None:
    register(api, run, "s", signalName="go")
    answer = deliver(api, run, "go", '{"note": "café ✓"}'.encode())
    assert answer.status == 200
    assert api(GET, {"runId": run, "stepKey": "s"}).json["payload"] == {"note": "café ✓"}


def test_a_base64_register_body_is_decoded(api: Callable[..., Answer], run: str) -> None:
    body = json.dumps({"signalName": "go"}).encode()
    answer = api(REGISTER, {"runId": run, "stepKey": "s"}, body=body, headers=JSON_HEADERS)
    assert answer.status == 200 and answer.json["signalName"] == "go"


@pytest.mark.parametrize("payload", ["null", "0", '"text"', "[1, 2]", "false"])
def test_any_json_body_is_a_payload(api: Callable[..., Answer], run: str, payload: str) -> None:
    register(api, run, "s", signalName="go")
    assert deliver(api, run, "go", payload).status == 200
    assert api(GET, {"runId": run, "stepKey": "s"}).json["payload"] == json.loads(payload)


@pytest.mark.parametrize(
    ("step_key", "signal_name"),
    [
        ("step one", "sign off"),
        ("Étape/2", "signé ✓"),
        ("a%2Fb", "100%"),
        ('quote"#?&', "x+y=z"),
        ("a/b/c", "with/slash"),
    ],
)
def test_encoded_names_reach_the_store_decoded(
    api: Callable[..., Answer], run: str, step_key: str, signal_name: str
) -> None:
    answer = register(api, run, step_key, signalName=signal_name)
    assert answer.status == 200, answer.text
    assert answer.json["stepKey"] == step_key and answer.json["signalName"] == signal_name

    delivered = deliver(api, run, signal_name, "{}")
    assert delivered.status == 200 and delivered.json["stepKey"] == step_key
    read = api(GET, {"runId": run, "stepKey": step_key})
    assert read.status == 200 and read.json["state"] == "Delivered"
    assert api(DELETE, {"runId": run, "stepKey": step_key}).status == 204
    assert api(GET, {"runId": run, "stepKey": step_key}).status == 404


def test_the_task_token_is_stored_but_never_answered_nor_logged(
    api: Callable[..., Answer], run: str, logs: io.StringIO
) -> None:
    registered = load_handler("RegisterFunction")(
        {"runId": run, "stepKey": "s", "signalName": "go", "taskToken": TOKEN},
        FakeLambdaContext(),
    )
    assert TOKEN not in json.dumps(registered)
    answers = [
        register(api, run, "s", signalName="go"),
        api(GET, {"runId": run, "stepKey": "s"}),
        api(LIST, {"runId": run}),
        deliver(api, run, "go", '{"secret-payload": 1}'),
        deliver(api, run, "go", "{}"),
    ]
    for answer in answers:
        assert TOKEN not in json.dumps(answer.raw)
        assert "taskToken" not in answer.text
    stored = runtime.store().get_waiter(run, "s")
    assert stored is not None and stored.task_token == TOKEN  # the API cannot take it away
    assert TOKEN not in logs.getvalue() and "secret-payload" not in logs.getvalue()


def test_a_task_token_over_http_is_400_and_registers_nothing(
    api: Callable[..., Answer], run: str
) -> None:
    answer = register(api, run, "s", signalName="go", taskToken=TOKEN)
    assert "taskToken" in assert_problem(answer, 400, "InvalidRequest")["detail"]
    assert TOKEN not in answer.text
    assert api(GET, {"runId": run, "stepKey": "s"}).status == 404


# --- bad requests --------------------------------------------------------------------------

BAD_RUN_IDS = [" ", " order-1", "order-1\t", "a\u0001b", "x" * 257]


@pytest.mark.parametrize("bad_run", BAD_RUN_IDS)
def test_a_bad_run_id_is_400_on_every_route(api: Callable[..., Answer], bad_run: str) -> None:
    answers = [
        register(api, bad_run, "s", signalName="go"),
        api(GET, {"runId": bad_run, "stepKey": "s"}),
        api(DELETE, {"runId": bad_run, "stepKey": "s"}),
        api(LIST, {"runId": bad_run}),
        deliver(api, bad_run, "go", "{}"),
    ]
    for answer in answers:
        problem = assert_problem(answer, 400, "InvalidRequest")
        assert problem["detail"].startswith("runId: ")


BAD_REGISTER_BODIES = [
    ("both deadline forms", {"signalName": "go", "expiresAt": LATER, "timeoutSeconds": 5}),
    ("naive expiresAt", {"signalName": "go", "expiresAt": "2030-01-01T00:00:00"}),
    ("unparsable expiresAt", {"signalName": "go", "expiresAt": "next tuesday"}),
    ("numeric expiresAt", {"signalName": "go", "expiresAt": 1900000000}),
    ("numeric-string expiresAt", {"signalName": "go", "expiresAt": "1700000000"}),
    ("zero-string expiresAt", {"signalName": "go", "expiresAt": "0"}),
    ("date-only expiresAt", {"signalName": "go", "expiresAt": "2030-01-01"}),
    ("year-one expiresAt", {"signalName": "go", "expiresAt": "0001-01-01T00:00:00+01:00"}),
    ("task token", {"signalName": "go", "taskToken": "t"}),
    ("zero timeout", {"signalName": "go", "timeoutSeconds": 0}),
    ("negative timeout", {"signalName": "go", "timeoutSeconds": -5}),
    ("fractional timeout", {"signalName": "go", "timeoutSeconds": 1.5}),
    ("string timeout", {"signalName": "go", "timeoutSeconds": "5"}),
    ("boolean timeout", {"signalName": "go", "timeoutSeconds": True}),
    ("huge timeout", {"signalName": "go", "timeoutSeconds": 10**30}),
    ("missing signal name", {"timeoutSeconds": 5}),
    ("numeric signal name", {"signalName": 5}),
    ("null signal name", {"signalName": None}),
    ("blank signal name", {"signalName": "   "}),
    ("long signal name", {"signalName": "x" * 257}),
    ("control character", {"signalName": "a\u0000b"}),
    ("empty task token", {"signalName": "go", "taskToken": ""}),
    ("numeric task token", {"signalName": "go", "taskToken": 7}),
    ("unknown field", {"signalName": "go", "timeoutSecond": 5}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "body"), BAD_REGISTER_BODIES, ids=[c for c, _ in BAD_REGISTER_BODIES]
)
def test_bad_register_bodies_are_400_and_write_nothing(
    api: Callable[..., Answer], run: str, case: str, body: dict[str, Any]
) -> None:
    answer = register(api, run, "s", **body)
    assert_problem(answer, 400, "InvalidRequest")
    assert api(GET, {"runId": run, "stepKey": "s"}).status == 404


@pytest.mark.parametrize(
    "raw_body",
    ["", "not json", "{", "[]", "null", '"go"', "{'signalName': 'go'}", '{"signalName": "go"} x'],
)
def test_register_bodies_that_are_not_a_json_object_are_400(
    api: Callable[..., Answer], run: str, raw_body: str
) -> None:
    answer = api(REGISTER, {"runId": run, "stepKey": "s"}, body=raw_body, headers=JSON_HEADERS)
    assert_problem(answer, 400, "InvalidRequest")


OBJECT_BODIES = [
    (REGISTER, {"stepKey": "s"}, '[{"signalName": "go"}]'),
    (REGISTER, {"stepKey": "s"}, '[{"signalName": "go"}, 5]'),
    (FAILURE, {"signalName": "go"}, '[{"error": "Rejected"}]'),
    ("POST /runs/{runId}/signals/{signalName}/links", {"signalName": "go"}, '[{"approver": "a"}]'),
    ("POST /runs/{runId}/signals/{signalName}/links", {"signalName": "go"}, "[null]"),
]


@pytest.mark.parametrize(("route", "names", "raw_body"), OBJECT_BODIES)
def test_an_array_is_never_read_as_the_object_it_holds(
    links: Any, route: str, names: dict[str, str], raw_body: str
) -> None:
    run = str(uuid4())
    register(call_route, run, "s", signalName="go")
    answer = call_route(route, {"runId": run, **names}, body=raw_body, headers=JSON_HEADERS)
    assert_problem(answer, 400, "InvalidRequest")
    assert call_route(GET, {"runId": run, "stepKey": "s"}).json["state"] == "Waiting"


def test_an_array_payload_is_delivered_whole(api: Callable[..., Answer], run: str) -> None:
    register(api, run, "s", signalName="go")
    assert deliver(api, run, "go", '[{"a": 1}, 2]').status == 200
    assert api(GET, {"runId": run, "stepKey": "s"}).json["payload"] == [{"a": 1}, 2]


def test_a_bad_step_key_is_400(api: Callable[..., Answer], run: str) -> None:
    for step_key in ("   ", "x" * 257, "a\u0007b"):
        assert_problem(register(api, run, step_key, signalName="go"), 400, "InvalidRequest")
        assert_problem(api(GET, {"runId": run, "stepKey": step_key}), 400, "InvalidRequest")


@pytest.mark.parametrize("body", ["not json", "{", "NaN", "[1,]", "{'a': 1}", '{"a": Infinity}'])
def test_a_deliver_body_that_is_not_json_is_400_and_delivers_nothing(
    api: Callable[..., Answer], run: str, body: str
) -> None:
    register(api, run, "s", signalName="go")
    assert_problem(deliver(api, run, "go", body), 400, "InvalidRequest")
    assert api(GET, {"runId": run, "stepKey": "s"}).json["state"] == "Waiting"


@pytest.mark.parametrize(
    "bad",
    ["%%%not-base64%%%", "e3!0=", "e30=\n", "/w=="],
    ids=["not base64", "outside the alphabet", "a newline", "not UTF-8"],
)
def test_a_base64_body_that_does_not_decode_is_400(
    api: Callable[..., Answer], run: str, bad: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    register(api, run, "s", signalName="go")
    real_event = http_api_event

    def with_bad_body(*args: Any, **kwargs: Any) -> dict[str, Any]:
        return {**real_event(*args, **kwargs), "isBase64Encoded": True, "body": bad}

    monkeypatch.setattr(f"{__name__}.http_api_event", with_bad_body)
    assert_problem(deliver(api, run, "go", "{}"), 400, "InvalidRequest")
    assert_problem(register(api, run, "s", signalName="go"), 400, "InvalidRequest")
    monkeypatch.undo()
    assert api(GET, {"runId": run, "stepKey": "s"}).json["state"] == "Waiting"


def test_a_payload_over_256_kib_is_413(api: Callable[..., Answer], run: str) -> None:
    register(api, run, "s", signalName="go")
    answer = deliver(api, run, "go", json.dumps("x" * 262_143))
    assert_problem(answer, 413, "PayloadTooLarge")
    assert api(GET, {"runId": run, "stepKey": "s"}).json["state"] == "Waiting"


def test_a_bad_idempotency_key_is_400(api: Callable[..., Answer], run: str) -> None:
    register(api, run, "s", signalName="go")
    answer = deliver(api, run, "go", "{}", headers={"Idempotency-Key": "x" * 129})
    detail = assert_problem(answer, 400, "InvalidRequest")["detail"]
    assert detail.startswith("Idempotency-Key: ")


def test_a_missing_table_is_a_500_problem_without_internals(
    api: Callable[..., Answer], run: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TABLE_NAME", "secret-internal-table-name")
    reset_runtime()
    answer = register(api, run, "s", signalName="go")
    problem = assert_problem(answer, 500, "InternalError")
    assert "secret-internal-table-name" not in answer.text
    assert "Traceback" not in answer.text and "ResourceNotFound" not in answer.text
    assert set(problem) == {"type", "title", "status", "detail", "code"}


def test_an_unreachable_dynamodb_is_503_with_retry_after(
    run: str, monkeypatch: pytest.MonkeyPatch, no_retry_backoff: None
) -> None:
    monkeypatch.setenv("TABLE_NAME", TABLE_NAME)
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:9")  # nothing listens
    reset_runtime()
    answers = [
        register(call_route, run, "s", signalName="go"),
        deliver(call_route, run, "go", "{}"),
        call_route(GET, {"runId": run, "stepKey": "s"}),
        call_route(LIST, {"runId": run}),
        call_route(DELETE, {"runId": run, "stepKey": "s"}),
    ]
    reset_runtime()
    for answer in answers:
        assert_problem(answer, 503, "ServiceUnavailable")
        assert int(answer.headers["retry-after"]) > 0
        assert "127.0.0.1" not in answer.text


@pytest.mark.dynamodb_local
@pytest.mark.parametrize("code", ["ProvisionedThroughputExceededException", "ThrottlingException"])
def test_throttling_after_retries_is_503_and_changes_nothing(
    dynamodb_local_endpoint: str,
    dynamodb_local_table: tuple[Any, str],
    monkeypatch: pytest.MonkeyPatch,
    no_retry_backoff: None,
    run: str,
    code: str,
) -> None:
    monkeypatch.setenv("TABLE_NAME", dynamodb_local_table[1])
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", dynamodb_local_endpoint)
    reset_runtime()
    register(call_route, run, "s", signalName="go")
    before = call_route(LIST, {"runId": run}).json

    with dynamodb_answers(runtime.store()._client, 400, code) as attempts:  # type: ignore[attr-defined]
        answers = [
            register(call_route, run, "s", signalName="renamed"),
            deliver(call_route, run, "go", "{}"),
            call_route(DELETE, {"runId": run, "stepKey": "s"}),
        ]
    assert len(attempts) >= 3 * 4, "each operation was retried before giving up"
    for answer in answers:
        assert_problem(answer, 503, "ServiceUnavailable")
        assert answer.headers["retry-after"] == "1"
    assert call_route(LIST, {"runId": run}).json == before
    reset_runtime()


RAW_HOSTILE_BODIES = [
    (
        "timeoutSeconds of 5,000 digits",
        '{"signalName": "go", "timeoutSeconds": ' + "9" * 5000 + "}",
    ),
    ("an unknown field 200,000 arrays deep", '{"x": ' + "[" * 200_000 + "]" * 200_000 + "}"),
    ("a number beyond a double", '{"signalName": "go", "timeoutSeconds": 1e400}'),
    ("duplicate names", '{"signalName": "go", "signalName": "other"}'),
    ("a lone surrogate", '{"signalName": "\\ud800"}'),
    ("NaN", '{"signalName": "go", "timeoutSeconds": NaN}'),
]


@pytest.mark.parametrize(
    ("case", "body"), RAW_HOSTILE_BODIES, ids=[c for c, _ in RAW_HOSTILE_BODIES]
)
def test_hostile_register_bodies_are_400_never_500(
    api: Callable[..., Answer], run: str, case: str, body: str
) -> None:
    answer = api(REGISTER, {"runId": run, "stepKey": "s"}, body=body, headers=JSON_HEADERS)
    assert_problem(answer, 400, "InvalidRequest")
    assert api(GET, {"runId": run, "stepKey": "s"}).status == 404


HOSTILE_PAYLOADS = [
    "1e400",
    "-1e400",
    "9" * 4301,
    "[" + "1" * 400 + "]",
    '"\\ud800"',
    '{"\\udfff": 1}',
    '{"a": 1, "a": 2}',
    "[" * 129 + "]" * 129,
    "[" * 200_000 + "]" * 200_000,
]


@pytest.mark.parametrize("payload", HOSTILE_PAYLOADS, ids=lambda p: p[:20])
def test_a_payload_no_read_could_return_is_refused_and_the_run_stays_readable(
    api: Callable[..., Answer], run: str, payload: str
) -> None:
    register(api, run, "s", signalName="go")
    assert_problem(deliver(api, run, "go", payload), 400, "InvalidRequest")
    assert api(GET, {"runId": run, "stepKey": "s"}).json["state"] == "Waiting"
    assert api(LIST, {"runId": run}).status == 200


SECRET = "Secret-Value-7f3a"


def test_no_error_repeats_the_value_it_refused(api: Callable[..., Answer], run: str) -> None:
    """Inputs may be secrets (tokens, personal data): a message names the field, not the value."""
    answers = [
        register(api, f" {SECRET}", "s", signalName="go"),
        register(api, run, f"{SECRET}\n", signalName="go"),
        register(api, run, "s", signalName=f"{SECRET}\u0001"),
        register(api, run, "s", signalName="go", expiresAt=SECRET),
        register(api, run, "s", signalName="go", timeoutSeconds=SECRET),
        deliver(api, run, "go", "{}", headers={"Idempotency-Key": SECRET * 10}),
        deliver(api, run, "go", f'{{"{SECRET}": NaN}}'),
        api(LIST, {"runId": run}, raw_query_string=f"limit={SECRET}"),
        api(LIST, {"runId": run}, raw_query_string=f"nextToken={SECRET}"),
    ]
    for answer in answers:
        assert answer.status == 400, answer.text
        assert SECRET not in answer.text, answer.text
    assert "runId" in answers[0].text and "stepKey" in answers[1].text


def test_a_silent_dynamodb_is_a_503_before_the_function_times_out(
    run: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TABLE_NAME", TABLE_NAME)
    with silent_endpoint() as endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", endpoint)
        reset_runtime()
        for route, parameters in [
            (DELIVER, {"runId": run, "signalName": "go"}),
            (GET, {"runId": run, "stepKey": "s"}),
        ]:
            context = FakeLambdaContext(remaining_time_in_millis=6_000)
            started = time.monotonic()
            answer = Answer(load_handler(route)(http_api_event(route, parameters), context))
            assert time.monotonic() - started < 6.0, "answered after the function's timeout"
            assert_problem(answer, 503, "ServiceUnavailable")
            assert answer.headers["retry-after"] == "1"
    reset_runtime()


def test_an_unknown_field_is_named_briefly_however_long_or_many(
    api: Callable[..., Answer], run: str
) -> None:
    body = {"signalName": "go", "x" * 100_000: 1} | {f"extra{n}": n for n in range(5_000)}
    answer = register(api, run, "s", **body)
    detail = assert_problem(answer, 400, "InvalidRequest")["detail"]
    assert len(answer.text) < 2_000 and detail.endswith("; and 4991 more")


def test_a_body_over_one_mebibyte_is_413_before_it_is_read(
    api: Callable[..., Answer], run: str
) -> None:
    register(api, run, "s", signalName="go")
    huge = "[" + "{}," * 400_000 + "{}]"
    assert_problem(deliver(api, run, "go", huge), 413, "PayloadTooLarge")
    too_big = api(FAILURE, {"runId": run, "signalName": "go"}, body=huge)
    assert_problem(too_big, 413, "PayloadTooLarge")
    assert api(GET, {"runId": run, "stepKey": "s"}).json["state"] == "Waiting"


MALFORMED_HTTP_EVENTS = [
    {"headers": {"idempotency-key": 5}},
    {"queryStringParameters": ["limit", "1"]},
    {"queryStringParameters": "limit=1"},
    {"queryStringParameters": {"limit": None}},
    {"rawQueryString": 5},
    {"cookies": 5},
    {"isBase64Encoded": "yes"},
    {"pathParameters": {"runId": 5, "signalName": "go"}},
]


@pytest.mark.parametrize("change", MALFORMED_HTTP_EVENTS, ids=repr)
def test_an_event_that_is_not_well_formed_is_a_bad_direct_event(
    api: Callable[..., Answer], run: str, change: dict[str, Any]
) -> None:
    event = {**http_api_event(DELIVER, {"runId": run, "signalName": "go"}), **change}
    with pytest.raises(Exception) as raised:  # noqa: PT011 - the type's name is the contract
        load_handler(DELIVER)(event, FakeLambdaContext())
    assert type(raised.value).__name__ == "InvalidSignalRequest"
