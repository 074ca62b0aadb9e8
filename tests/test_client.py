"""flowsignals.client: the HTTP API with the store's names and answers, and the `flowsignals`
command, against `make run`'s real server (and tiny stub servers for what it cannot do)."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import json
import logging
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit
from uuid import uuid4

import botocore.session
import pytest
from api_stub import DELIVERED, UNAVAILABLE, WAITER, Stub, problem, serving, stub_server

from conftest import running_local_server
from dynamodb_local import free_port
from flowsignals import (
    FlowSignalError,
    InMemoryFlowSignalStore,
    InvalidSignalRequest,
    NotAllowedToDecide,
    PayloadTooLarge,
    SignalDeliveryStatus,
    SignalFailure,
    StoreUnavailable,
)
from flowsignals.client import FlowSignalsClient
from flowsignals.client import client as client_module
from flowsignals.client.cli import main
from flowsignals.core.links import LinkAction

SUBCOMMANDS = ("register", "deliver", "fail", "get", "list", "remove", "link")


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with running_local_server() as url:
        yield url


@pytest.fixture
def client(base_url: str) -> FlowSignalsClient:
    return FlowSignalsClient(base_url)


@pytest.fixture
def run() -> str:
    return f"run-{uuid4()}"


@pytest.fixture
def no_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries wait for nothing (their waits are tested on their own)."""
    monkeypatch.setattr(client_module, "_sleep", lambda seconds: None)


def closed_port_url() -> str:
    """A loopback URL where nothing listens."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def stub() -> Iterator[Stub]:
    with stub_server() as state:
        yield state


# --- the whole cycle against make run's server ---------------------------------------------


def test_a_whole_approval_through_the_client(client: FlowSignalsClient, run: str) -> None:
    waiter = client.register_waiter(run, "manager-approval", "approve", timeout_seconds=3600)
    assert (waiter.run_id, waiter.step_key, waiter.signal_name) == (
        run,
        "manager-approval",
        "approve",
    )
    # The timeout counts from the request; the store stamps createdAt a moment later.
    assert waiter.expires_at is not None
    assert timedelta(minutes=59) < waiter.expires_at - waiter.created_at <= timedelta(hours=1)
    assert not waiter.is_delivered and waiter.payload_json is None

    first = client.deliver_signal(run, "approve", '{"approved": true}', idempotency_key="click-1")
    assert first.status is SignalDeliveryStatus.DELIVERED and first.step_key == "manager-approval"
    assert first.delivered_at is not None and not first.replayed

    replay = client.deliver_signal(run, "approve", '{"approved": false}', idempotency_key="click-1")
    assert replay.status is SignalDeliveryStatus.DELIVERED and replay.replayed
    assert (replay.step_key, replay.delivered_at) == (first.step_key, first.delivered_at)

    again = client.deliver_signal(run, "approve", "{}")
    assert again.status is SignalDeliveryStatus.ALREADY_DELIVERED
    assert (again.step_key, again.delivered_at) == ("manager-approval", first.delivered_at)

    stored = client.get_waiter(run, "manager-approval")
    assert stored is not None and stored.delivered_at == first.delivered_at
    assert stored.payload_json is not None and json.loads(stored.payload_json) == {"approved": True}
    assert stored.failure is None and stored.created_at == waiter.created_at


def test_a_failure_signal_resumes_the_step_with_the_failure(
    client: FlowSignalsClient, run: str
) -> None:
    client.register_waiter(run, "legal-review", "legal")
    result = client.deliver_signal(
        run, "legal", failure=SignalFailure(error="Rejected", cause="Missing clause 4")
    )
    assert result.status is SignalDeliveryStatus.DELIVERED and result.step_key == "legal-review"

    review = client.get_waiter(run, "legal-review")
    assert review is not None and review.is_delivered and review.payload_json is None
    assert review.failure == SignalFailure(error="Rejected", cause="Missing clause 4")

    late = client.deliver_signal(run, "legal", '{"approved": true}')
    assert late.status is SignalDeliveryStatus.ALREADY_DELIVERED


def test_an_early_signal_is_buffered_then_received_at_registration(
    client: FlowSignalsClient, run: str
) -> None:
    before = datetime.now(UTC)
    early = client.deliver_signal(run, "ship", '{"box": 7}', buffer_for=timedelta(hours=1))
    assert early.status is SignalDeliveryStatus.BUFFERED and early.step_key is None
    assert early.expires_at is not None
    assert timedelta(minutes=59) < early.expires_at - before < timedelta(minutes=61)

    signals = client.list_buffered_signals(run)
    assert [(s.signal_name, s.buffered_until) for s in signals] == [("ship", early.expires_at)]

    shipping = client.register_waiter(run, "shipping", "ship")
    assert shipping.is_delivered and shipping.payload_json is not None
    assert json.loads(shipping.payload_json) == {"box": 7}
    assert client.list_buffered_signals(run) == []


def test_not_found_and_expired_are_answers_not_errors(client: FlowSignalsClient, run: str) -> None:
    nobody = client.deliver_signal(run, "approve", "{}")
    assert nobody.status is SignalDeliveryStatus.NOT_FOUND
    assert (nobody.step_key, nobody.delivered_at, nobody.expires_at) == (None, None, None)

    deadline = datetime(2020, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    client.register_waiter(run, "too-late", "approve", deadline)
    expired = client.deliver_signal(run, "approve", "{}")
    assert expired.status is SignalDeliveryStatus.EXPIRED
    assert (expired.step_key, expired.expires_at) == ("too-late", deadline)


def test_list_waiters_follows_every_page_oldest_first(client: FlowSignalsClient, run: str) -> None:
    count = 120
    assert count > client_module.MAX_PAGE_SIZE  # so the list takes more than one page
    keys = [f"step-{i:03d}" for i in range(count)]
    for key in keys:
        client.register_waiter(run, key, "go")

    waiters = client.list_waiters(run)
    assert [w.step_key for w in waiters] == keys
    assert [w.created_at for w in waiters] == sorted(w.created_at for w in waiters)
    assert client.list_waiters(f"{run}-empty") == []


def test_list_waiters_of_one_signal(
    client: FlowSignalsClient, run: str, capsys: pytest.CaptureFixture[str], base_url: str
) -> None:
    for n in range(4):
        client.register_waiter(run, f"step-{n}", "approve" if n % 2 else "review")
    client.deliver_signal(run, "approve", '"yes"')

    waiters = client.list_waiters(run, signal_name="approve")

    assert [(w.step_key, w.payload_json) for w in waiters] == [
        ("step-1", '"yes"'),
        ("step-3", None),
    ]
    assert main(["--api-url", base_url, "list", run, "--signal-name", "review"]) == 0
    listed = json.loads(capsys.readouterr().out)["waiters"]
    assert [w["stepKey"] for w in listed] == ["step-0", "step-2"]
    with pytest.raises(InvalidSignalRequest, match="signal_name"):
        client.list_waiters(run, signal_name="\x00")


def test_deciders_through_the_client_and_the_cli(
    client: FlowSignalsClient, run: str, capsys: pytest.CaptureFixture[str], base_url: str
) -> None:
    waiter = client.register_waiter(
        run, "pay", "approve", deciders=["email:Ana@Example.com", "sub:b"], quorum=2
    )
    assert (waiter.deciders, waiter.quorum) == (("email:ana@example.com", "sub:b"), 2)
    # make run enforces no IAM: its callers have no identity, so they may decide nothing here.
    with pytest.raises(NotAllowedToDecide):
        client.deliver_signal(run, "approve", "{}")
    assert main(["--api-url", base_url, "deliver", run, "approve"]) == 4
    assert "not allowed to decide" in capsys.readouterr().err
    command = ["--api-url", base_url, "register", run, "other", "go", "--decider", "sub:x"]
    assert main([*command, "--quorum", "2"]) == 2  # more than the deciders named
    assert "quorum" in capsys.readouterr().err
    assert main(command) == 0
    assert json.loads(capsys.readouterr().out)["deciders"] == ["sub:x"]


def test_get_answers_none_after_remove(client: FlowSignalsClient, run: str) -> None:
    client.register_waiter(run, "step", "go")
    assert client.get_waiter(run, "step") is not None
    client.remove_waiter(run, "step")
    assert client.get_waiter(run, "step") is None
    client.remove_waiter(run, "step")  # removing a missing waiter is not an error


@pytest.mark.parametrize(
    ("run_id", "step_key", "signal_name"),
    [
        ("tenant/a b/ünï", "step/one two/é", "sig/nal ü"),
        ("run?x=1#frag", "..", "a%2Fb"),
        ("日本語の実行", ".", "+ & = ;"),
    ],
)
def test_names_with_slashes_spaces_and_non_ascii_travel_intact(
    client: FlowSignalsClient, run_id: str, step_key: str, signal_name: str
) -> None:
    run_id = f"{run_id}-{uuid4().hex[:8]}"
    waiter = client.register_waiter(run_id, step_key, signal_name)
    assert (waiter.run_id, waiter.step_key, waiter.signal_name) == (run_id, step_key, signal_name)

    result = client.deliver_signal(run_id, signal_name, '"ok"')
    assert result.status is SignalDeliveryStatus.DELIVERED and result.step_key == step_key

    stored = client.get_waiter(run_id, step_key)
    assert stored is not None and stored.payload_json == '"ok"'
    assert [w.step_key for w in client.list_waiters(run_id)] == [step_key]
    client.remove_waiter(run_id, step_key)
    assert client.get_waiter(run_id, step_key) is None


def test_a_uuid_in_any_spelling_is_one_run(client: FlowSignalsClient) -> None:
    run = uuid4()
    waiter = client.register_waiter(run, "step", "go")
    assert waiter.run_id == str(run)
    stored = client.get_waiter(str(run).upper(), "step")
    assert stored is not None and stored.run_id == str(run)


def test_a_null_payload_reads_back_as_null_not_as_undelivered(
    client: FlowSignalsClient, run: str
) -> None:
    client.register_waiter(run, "step", "go")
    assert client.deliver_signal(run, "go", "null").status is SignalDeliveryStatus.DELIVERED
    stored = client.get_waiter(run, "step")
    assert stored is not None and stored.is_delivered and stored.payload_json == "null"


# --- errors --------------------------------------------------------------------------------


def test_a_bad_run_id_is_invalid_signal_request_naming_run_id(client: FlowSignalsClient) -> None:
    with pytest.raises(InvalidSignalRequest, match="run_id") as raised:
        client.register_waiter(" padded ", "step", "go")
    assert not isinstance(raised.value, PayloadTooLarge)
    with pytest.raises(InvalidSignalRequest, match="run_id"):
        client.deliver_signal("x" * 257, "go", "{}")


def test_a_payload_over_256_kib_is_payload_too_large(client: FlowSignalsClient, run: str) -> None:
    client.register_waiter(run, "step", "go")
    payload = json.dumps("a" * 262_143)  # 262,145 bytes with its quotes
    with pytest.raises(PayloadTooLarge, match="262144"):
        client.deliver_signal(run, "go", payload)
    at_limit = json.dumps("a" * 262_142)
    assert client.deliver_signal(run, "go", at_limit).status is SignalDeliveryStatus.DELIVERED


@pytest.mark.usefixtures("no_waits")
def test_an_unreachable_api_is_store_unavailable() -> None:
    unreachable = FlowSignalsClient(closed_port_url(), timeout=2)
    with pytest.raises(StoreUnavailable, match="could not reach"):
        unreachable.get_waiter("run", "step")
    with pytest.raises(StoreUnavailable):
        unreachable.deliver_signal("run", "go", "{}")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: c.get_waiter("run", ""), "step_key"),
        (lambda c: c.deliver_signal("", "go", "{}"), "run_id"),
        (lambda c: c.deliver_signal("run", "go"), "exactly one"),
        (
            lambda c: c.deliver_signal("run", "go", "{}", failure=SignalFailure(error="E")),
            "exactly one",
        ),
        (lambda c: c.deliver_signal("run", "go", '"\ud800"'), "payload_json"),
        (lambda c: c.deliver_signal("run", "go", "{}", idempotency_key="clé"), "idempotency_key"),
        (lambda c: c.register_waiter("run", "s", "go", datetime(2030, 1, 1)), "expires_at"),
        (lambda c: c.register_waiter("run", "s\udc00", "go"), "step_key"),
    ],
)
def test_what_the_api_would_refuse_is_refused_before_sending(call: Any, message: str) -> None:
    # Nothing listens there: a request that went out would raise StoreUnavailable instead.
    with pytest.raises(InvalidSignalRequest, match=message):
        call(FlowSignalsClient(closed_port_url()))


def test_a_503_is_retried_after_retry_after(stub: Stub) -> None:
    stub.answers = [UNAVAILABLE, UNAVAILABLE, DELIVERED]
    result = FlowSignalsClient(stub.url).deliver_signal(
        "run", "go", '{"n": 1}', idempotency_key="k"
    )
    assert result.status is SignalDeliveryStatus.DELIVERED and result.step_key == "s"
    assert len(stub.requests) == 3
    assert {(r.method, r.path, r.body, r.headers["Idempotency-Key"]) for r in stub.requests} == {
        ("POST", "/runs/run/signals/go", b'{"n": 1}', "k")
    }


def test_retries_of_a_delivery_without_a_key_carry_one_key_of_the_call(stub: Stub) -> None:
    """A 503 may follow a write that was applied: the retries must be replays of it."""
    stub.answers = [UNAVAILABLE, UNAVAILABLE, DELIVERED]
    client = FlowSignalsClient(stub.url)
    client.deliver_signal("run", "go", "{}")
    client.deliver_signal("run", "go", "{}")
    keys = [r.headers.get("Idempotency-Key") for r in stub.requests]
    assert len(keys) == 4 and None not in keys
    assert keys[0] == keys[1] == keys[2] != keys[3]


def test_a_503_after_the_last_retry_is_store_unavailable(stub: Stub) -> None:
    stub.answers = [UNAVAILABLE]
    with pytest.raises(StoreUnavailable, match="503 after 2 retries: busy"):
        FlowSignalsClient(stub.url, max_retries=2).get_waiter("run", "step")
    assert len(stub.requests) == 3
    with pytest.raises(StoreUnavailable):
        FlowSignalsClient(stub.url, max_retries=0).list_waiters("run")
    assert len(stub.requests) == 4


def test_retry_after_is_honoured_up_to_a_cap(stub: Stub, monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    monkeypatch.setattr(client_module, "_sleep", waits.append)
    hour = (503, {"Retry-After": "3600"}, problem(503, "ServiceUnavailable", "busy"))
    two = (503, {"Retry-After": "2"}, problem(503, "ServiceUnavailable", "busy"))
    unsaid = (429, {}, {"message": "Too Many Requests"})
    stub.answers = [hour, two, unsaid, DELIVERED]
    result = FlowSignalsClient(stub.url).deliver_signal("run", "go", "{}")
    assert result.status is SignalDeliveryStatus.DELIVERED
    # The 429 names no wait: the client's backoff for a third retry.
    assert waits == [client_module.MAX_RETRY_AFTER_SECONDS, 2.0, client_module.backoff(3)]


@pytest.mark.parametrize(
    "answer",
    [
        (500, {}, problem(500, "InternalError", "An internal error occurred.")),
        (403, {}, {"message": "Forbidden"}),
        (404, {}, {"message": "Not Found"}),  # no such route: a wrong api_url, not "no waiter"
        (200, {}, {"unexpected": True}),
    ],
)
def test_other_answers_are_flow_signal_errors(stub: Stub, answer: Any) -> None:
    stub.answers = [answer]
    with pytest.raises(FlowSignalError) as raised:
        FlowSignalsClient(stub.url).get_waiter("run", "step")
    assert type(raised.value) is FlowSignalError
    assert len(stub.requests) == 1


def test_a_page_token_that_goes_nowhere_is_an_error_not_a_loop(stub: Stub) -> None:
    stub.answers = [(200, {}, {"waiters": [WAITER], "nextToken": "same"})]
    with pytest.raises(FlowSignalError, match="cannot follow"):
        FlowSignalsClient(stub.url).list_waiters("run")
    assert len(stub.requests) == 2
    assert stub.requests[1].path == "/runs/run/waiters?limit=100&nextToken=same"


def test_a_bearer_token_is_sent_and_loopback_is_unsigned(stub: Stub) -> None:
    FlowSignalsClient(stub.url, bearer_token="tok-123").deliver_signal("run", "go", "{}")
    FlowSignalsClient(stub.url).deliver_signal("run", "go", "{}")
    with_token, plain = stub.requests
    assert with_token.headers["Authorization"] == "Bearer tok-123"
    assert "Authorization" not in plain.headers and "X-Amz-Date" not in plain.headers


def test_payloads_and_tokens_are_never_logged(stub: Stub, caplog: pytest.LogCaptureFixture) -> None:
    stub.answers = [UNAVAILABLE, (500, {}, problem(500, "InternalError", "oops"))]
    caplog.set_level(logging.DEBUG)
    secret_client = FlowSignalsClient(stub.url, bearer_token="token-s3cr3t")
    with pytest.raises(FlowSignalError) as raised:
        secret_client.deliver_signal("run", "go", '{"card": "payload-s3cr3t"}')
    assert "retry 1 of 3" in caplog.text  # the client does log, without secrets
    assert "s3cr3t" not in caplog.text
    assert "s3cr3t" not in str(raised.value) and "s3cr3t" not in repr(secret_client)


# --- SigV4 ---------------------------------------------------------------------------------

API = "https://abc123defg.execute-api.eu-west-1.amazonaws.com/prod"


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))


def expected_signature(request: Any, headers: dict[str, str], signed: list[str]) -> str:
    """SigV4 as AWS documents it, computed here without botocore."""
    secret = os.environ["AWS_SECRET_ACCESS_KEY"]
    amz_date = headers["x-amz-date"]
    day = amz_date[:8]
    url = urlsplit(request.full_url)
    # Services other than S3 encode each path segment twice: the path travels encoded once.
    canonical_uri = quote(url.path, safe="/~")
    query = sorted((quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in parse_qsl(url.query))
    values = headers | {"host": url.netloc}
    canonical = "\n".join(
        [
            request.get_method(),
            canonical_uri,
            "&".join(f"{k}={v}" for k, v in query),
            "".join(f"{name}:{' '.join(values[name].split())}\n" for name in signed),
            ";".join(signed),
            hashlib.sha256(request.data or b"").hexdigest(),
        ]
    )
    scope = f"{day}/eu-west-1/execute-api/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = ("AWS4" + secret).encode()
    for part in (day, "eu-west-1", "execute-api", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


@pytest.mark.usefixtures("aws_credentials")
def test_requests_to_a_deployed_api_are_sigv4_signed() -> None:
    signer = FlowSignalsClient(API, session=botocore.session.Session())
    assert signer.signs_requests
    path = f"/runs/{quote('tenant/a b', safe='')}/signals/{quote('sïg', safe='')}?bufferSeconds=60"
    request = signer.build_request(
        "POST", path, body=b'{"approved": true}', headers={"Idempotency-Key": "click-1"}
    )
    headers = {name.lower(): value for name, value in request.header_items()}
    authorization = headers["authorization"]
    assert authorization.startswith(
        f"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/{headers['x-amz-date'][:8]}"
        "/eu-west-1/execute-api/aws4_request, SignedHeaders="
    )
    signed = authorization.split("SignedHeaders=")[1].split(",")[0].split(";")
    assert {"host", "x-amz-date", "content-type", "idempotency-key"} <= set(signed)
    assert "user-agent" not in signed
    signature = authorization.split("Signature=")[1]
    assert signature == expected_signature(request, headers, signed)
    assert request.full_url == API + path


@pytest.mark.usefixtures("aws_credentials")
def test_signing_uses_the_default_chain_and_a_session_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session-token-1")
    signer = FlowSignalsClient(API)  # no session given: botocore's default chain
    request = signer.build_request("GET", "/runs/r/waiters/s")
    headers = {name.lower(): value for name, value in request.header_items()}
    assert headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert headers["x-amz-security-token"] == "session-token-1"
    assert "x-amz-security-token" in headers["authorization"]


@pytest.mark.usefixtures("aws_credentials")
def test_the_signing_region_comes_from_the_url_then_the_session(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def scope(client: FlowSignalsClient) -> str:
        request = client.build_request("GET", "/runs/r/waiters")
        return dict(request.header_items())["Authorization"].split("/")[2]

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-2")
    assert scope(FlowSignalsClient(API)) == "eu-west-1"
    assert scope(FlowSignalsClient("https://signals.example.com")) == "us-east-2"
    assert (
        scope(FlowSignalsClient("https://signals.example.com", region="ap-south-1")) == "ap-south-1"
    )
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.delenv("AWS_REGION", raising=False)
    with pytest.raises(FlowSignalError, match="region"):
        FlowSignalsClient("https://signals.example.com")
    assert not FlowSignalsClient("https://signals.example.com", bearer_token="t").signs_requests


# --- the command line ----------------------------------------------------------------------


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, json.loads(out) if out.strip() else None, err


def test_the_cli_cycle_in_process(
    base_url: str, run: str, capsys: pytest.CaptureFixture[str]
) -> None:
    api = ("--api-url", base_url)
    code, waiter, _ = cli(
        capsys, *api, "register", run, "approval", "approve", "--timeout-seconds", "3600"
    )
    assert code == 0 and waiter["stepKey"] == "approval" and waiter["state"] == "Waiting"
    assert set(waiter) == {
        "runId", "stepKey", "signalName", "createdAt", "expiresAt", "deliveredAt",
        "payload", "failure", "deliveredBy", "state", "deciders", "quorum", "approvals",
    }  # fmt: skip

    deliver = (
        "deliver",
        run,
        "approve",
        "--payload",
        '{"approved": true}',
        "--idempotency-key",
        "click-1",
    )
    code, result, _ = cli(capsys, *api, *deliver)
    assert code == 0 and result["status"] == "Delivered" and result["stepKey"] == "approval"
    assert result["replayed"] is False
    code, result, _ = cli(capsys, *api, *deliver)
    assert code == 0 and result["replayed"] is True

    code, result, err = cli(
        capsys, *api, "fail", run, "approve", "--error", "Rejected", "--cause", "late"
    )
    assert code == 1 and result["status"] == "AlreadyDelivered" and "AlreadyDelivered" in err
    assert result["stepKey"] == "approval" and result["deliveredAt"] is not None

    code, waiter, _ = cli(capsys, *api, "get", run, "approval")
    assert code == 0 and waiter["payload"] == {"approved": True} and waiter["state"] == "Delivered"

    cli(capsys, *api, "register", run, "legal", "legal")
    code, result, _ = cli(
        capsys, *api, "fail", run, "legal", "--error", "Rejected", "--cause", "No"
    )
    assert code == 0 and result["status"] == "Delivered" and result["stepKey"] == "legal"
    code, waiter, _ = cli(capsys, *api, "get", run, "legal")
    assert waiter["failure"] == {"error": "Rejected", "cause": "No"} and waiter["payload"] is None

    code, result, _ = cli(capsys, *api, "deliver", run, "ship", "--buffer-seconds", "600")
    assert code == 0 and result["status"] == "Buffered" and result["expiresAt"] is not None
    code, listed, _ = cli(capsys, *api, "list", run, "--signals")
    assert code == 0 and [s["signalName"] for s in listed["signals"]] == ["ship"]
    code, listed, _ = cli(capsys, *api, "list", run)
    assert code == 0 and [w["stepKey"] for w in listed["waiters"]] == ["approval", "legal"]

    code, nothing, _ = cli(capsys, *api, "remove", run, "approval")
    assert (code, nothing) == (0, {})
    code, missing, err = cli(capsys, *api, "get", run, "approval")
    assert (code, missing) == (1, None) and "no waiter" in err
    code, result, _ = cli(capsys, *api, "deliver", run, "nobody-waits")
    assert code == 1 and result["status"] == "NotFound"


def test_the_cli_reads_a_payload_from_a_file(
    base_url: str, run: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    payload = tmp_path / "payload.json"
    payload.write_text('{"note": "übermäßig"}', encoding="utf-8")
    cli(capsys, "--api-url", base_url, "register", run, "step", "go")
    code, _, _ = cli(
        capsys, "--api-url", base_url, "deliver", run, "go", "--payload-file", str(payload)
    )
    assert code == 0
    _, waiter, _ = cli(capsys, "--api-url", base_url, "get", run, "step")
    assert waiter["payload"] == {"note": "übermäßig"}


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["register", " padded ", "step", "go"], 2, "RUN: must not"),
        (["deliver", "run", "go", "--payload", "{not json"], 2, "I-JSON"),
        (["register", "run", "step"], 2, "SIGNAL"),
        (["register", "run", "s", "go", "--expires-at", "2030-01-01T00:00:00"], 2, "offset"),
        # read as the API reads expiresAt: RFC 3339, nothing looser
        (["register", "run", "s", "go", "--expires-at", "2030-01-01 00:00:00Z"], 2, "RFC 3339"),
        (["register", "run", "s", "go", "--expires-at", "2030-01-01T00:00+02:00"], 2, "RFC 3339"),
        (["deliver", "run", "go", "--buffer-seconds", "0"], 2, "1 to 2592000 seconds"),
        # whole numbers are read as the API reads a query string's: plain ASCII digits
        (["deliver", "run", "go", "--buffer-seconds", " 7 "], 2, "plain ASCII digits"),
        (["register", "run", "s", "go", "--timeout-seconds", "+5"], 2, "plain ASCII digits"),
        (["register", "run", "s", "go", "--timeout-seconds", "1_0"], 2, "plain ASCII digits"),
        (["register", "run", "s", "go", "--quorum", "\u0662"], 2, "plain ASCII digits"),
        (["register", "run", "s", "go", "--quorum", "11"], 2, "1 to 10"),
        (["deliver", "run", "go", "--payload-file", "/nonexistent/payload.json"], 2, "cannot read"),
        (["link", "a", "b", "--expires-in-seconds", "0"], 2, "1 to 2592000 seconds"),
        (["link", "a", "b", "--expires-in-seconds", "5.0"], 2, "plain ASCII digits"),
        (["link", "a", "b", "--actions", "[1]"], 2, "--actions: actions: Input should be a valid"),
        (["link", "a", "b", "--approver", "x" * 300], 2, "approver"),
        (["link", "a", "b", "--actions", '{"bad name": {}}'], 2, "actions.bad name"),
        ([], 2, "give a command"),
    ],
)
def test_the_cli_refuses_bad_input_with_exit_2(
    base_url: str, argv: list[str], code: int, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--api-url", base_url, *argv]) == code
    out, err = capsys.readouterr()
    assert message in err and out == ""


@pytest.mark.usefixtures("no_waits")
def test_the_cli_exits_3_when_unavailable_and_4_on_other_errors(
    stub: Stub, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--api-url", closed_port_url(), "get", "run", "step"]) == 3
    assert "service unavailable" in capsys.readouterr().err

    stub.answers = [UNAVAILABLE]
    assert main(["--api-url", stub.url, "--retries", "1", "deliver", "run", "go"]) == 3
    assert len(stub.requests) == 2

    stub.answers = [(403, {}, {"message": "Forbidden"})]
    assert main(["--api-url", stub.url, "list", "run"]) == 4
    assert "Forbidden" in capsys.readouterr().err


def test_the_cli_help_teaches_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    for name in SUBCOMMANDS:
        assert f"\n    {name} " in text, name
    assert "--idempotency-key click-1" in text and "exit status" in text
    for name, example in [
        ("register", "--timeout-seconds 3600"),
        ("deliver", "--buffer-seconds"),
        ("fail", "--error Rejected --cause"),
    ]:
        assert main([name, "--help"]) == 0
        sub = capsys.readouterr().out
        assert "examples:" in sub and example in sub, name


def test_the_console_script_in_a_subprocess(base_url: str, run: str) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FLOWSIGNALS_")}

    def flowsignals(*argv: str, **env: str) -> tuple[int, Any, str]:
        done = subprocess.run(
            [sys.executable, "-m", "flowsignals.client.cli", *argv],
            env=environment | env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return (
            done.returncode,
            json.loads(done.stdout) if done.stdout.strip() else None,
            done.stderr,
        )

    code, waiter, _ = flowsignals("register", run, "step", "go", FLOWSIGNALS_API_URL=base_url)
    assert code == 0 and waiter["runId"] == run and waiter["state"] == "Waiting"
    code, result, _ = flowsignals("--api-url", base_url, "deliver", run, "go", "--payload", "[1]")
    assert code == 0 and result["status"] == "Delivered" and result["stepKey"] == "step"
    code, result, err = flowsignals("--api-url", base_url, "deliver", run, "go")
    assert code == 1 and result["status"] == "AlreadyDelivered" and "no receiver" in err
    code, out, err = flowsignals("--api-url", base_url, "register", " padded ", "step", "go")
    assert code == 2 and out is None and "RUN: " in err
    unreachable = closed_port_url()
    code, out, err = flowsignals(
        "--retries", "0", "get", run, "step", FLOWSIGNALS_API_URL=unreachable
    )
    assert code == 3 and out is None and "unavailable" in err


def test_links_minted_by_the_client_and_the_cli_open_and_decide(
    client: FlowSignalsClient, base_url: str, run: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ship = LinkAction(label="Ship it", payload_json='{"carrier": "dhl"}')
    minted = client.create_links(
        run, "go", expires_in=timedelta(hours=1), approver="ana", actions={"ship": ship}
    )
    assert set(minted.links) == {"ship"}
    assert minted.expires_at - datetime.now(UTC) <= timedelta(hours=1, seconds=1)
    client.register_waiter(run, "step", "go")
    with urllib.request.urlopen(minted.links["ship"]) as page:  # a GET: looks only
        assert page.status == 200 and "Ship it?" in page.read().decode()
    waiting = client.get_waiter(run, "step")
    assert waiting is not None and waiting.delivered_at is None
    with urllib.request.urlopen(minted.links["ship"], data=b"") as page:  # the button: a POST
        assert page.status == 200
    waiter = client.get_waiter(run, "step")
    assert waiter is not None and waiter.payload_json == '{"carrier": "dhl"}'
    assert waiter.delivered_by == "ana"

    code, printed, _ = cli(capsys, "--api-url", base_url, "link", run, "go", "--approver", "bo")
    assert code == 0 and set(printed["links"]) == {"approve", "reject"}
    with pytest.raises(urllib.error.HTTPError) as decided:  # the step was decided above
        urllib.request.urlopen(printed["links"]["reject"], data=b"")
    assert decided.value.code == 409


# --- a lost answer, then a retry: one delivery -----------------------------------------------


@dataclass
class LosingProxy:
    url: str
    forwarded: int = 0


@contextlib.contextmanager
def losing_proxy(upstream: str, lose: int) -> Iterator[LosingProxy]:
    """A proxy to ``upstream`` that forwards every request, and loses the answers to the first
    ``lose`` of them: the API has done the work, the caller hears nothing back."""
    target = urlsplit(upstream)
    proxy = LosingProxy(url="")

    class Handler(BaseHTTPRequestHandler):
        def _forward(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            connection = http.client.HTTPConnection(target.netloc, timeout=30)
            sent = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            connection.request(self.command, self.path, body=body or None, headers=sent)
            answer = connection.getresponse()
            raw = answer.read()
            connection.close()
            proxy.forwarded += 1
            if proxy.forwarded <= lose:
                self.close_connection = True  # the answer is lost on the way back
                return
            self.send_response(answer.status)
            for name, value in answer.getheaders():
                if name.lower() not in ("transfer-encoding", "connection", "date", "server"):
                    self.send_header(name, value)
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_PUT = do_POST = do_DELETE = _forward

        def log_message(self, *args: Any) -> None:
            pass

    with serving(Handler) as url:
        proxy.url = url
        yield proxy


def register_two_steps(client: FlowSignalsClient, run: str) -> None:
    """Two steps wait for "go": a signal delivered twice would reach the second."""
    client.register_waiter(run, "first", "go")
    client.register_waiter(run, "second", "go")


def assert_the_second_step_waits(client: FlowSignalsClient, run: str) -> None:
    second = client.get_waiter(run, "second")
    assert second is not None and not second.is_delivered


@pytest.mark.usefixtures("no_waits")
def test_a_lost_answer_is_retried_and_delivers_once(client: FlowSignalsClient, run: str) -> None:
    register_two_steps(client, run)
    with losing_proxy(client.api_url, lose=1) as proxy:
        result = FlowSignalsClient(proxy.url).deliver_signal(run, "go", '{"n": 1}')
    assert proxy.forwarded == 2  # delivered, answer lost; retried: a replay
    assert result.status is SignalDeliveryStatus.DELIVERED and result.replayed
    assert result.step_key == "first"
    assert_the_second_step_waits(client, run)


@pytest.mark.usefixtures("no_waits")
def test_a_callers_own_retry_with_the_key_of_store_unavailable_delivers_once(
    client: FlowSignalsClient, run: str
) -> None:
    register_two_steps(client, run)
    with losing_proxy(client.api_url, lose=1) as proxy:
        impatient = FlowSignalsClient(proxy.url, max_retries=0)
        failure = SignalFailure(error="Rejected")
        with pytest.raises(StoreUnavailable) as raised:
            impatient.deliver_signal(run, "go", failure=failure)
        key = raised.value.idempotency_key
        assert key is not None
        again = impatient.deliver_signal(run, "go", failure=failure, idempotency_key=key)
    assert again.status is SignalDeliveryStatus.DELIVERED and again.replayed
    assert again.step_key == "first"
    assert_the_second_step_waits(client, run)


@pytest.mark.usefixtures("no_waits")
def test_the_cli_retry_it_prints_delivers_once(
    client: FlowSignalsClient, run: str, capsys: pytest.CaptureFixture[str]
) -> None:
    register_two_steps(client, run)
    with losing_proxy(client.api_url, lose=1) as proxy:
        command = ["--api-url", proxy.url, "--retries", "0", "deliver", run, "go"]
        code, _, err = cli(capsys, *command)
        assert code == 3
        key = err.split("--idempotency-key ")[1].split()[0]
        code, result, _ = cli(capsys, *command, "--idempotency-key", key)
    assert code == 0 and result["replayed"] is True and result["stepKey"] == "first"
    assert_the_second_step_waits(client, run)


# --- a drop-in for the store: the same calls, the same answers -------------------------------


def comparable(answer: Any) -> Any:
    """An answer without what differs between two stores by nature: instants stamped by their
    own clocks, payload spellings, and what the HTTP API never shows (idempotency keys)."""
    if isinstance(answer, list):
        return [comparable(item) for item in answer]
    if isinstance(answer, Exception):
        return type(answer).__name__, str(answer)
    if answer is None:
        return None
    data = answer.model_dump(exclude={"idempotency_key"})
    for name, value in data.items():
        if isinstance(value, datetime) and value not in (FUTURE, PAST):
            data[name] = "an instant"
        elif name == "payload_json" and value is not None:
            data[name] = json.loads(value)
    return data


FUTURE = datetime(2099, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
PAST = datetime(2020, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
REJECTED = SignalFailure(error="Rejected", cause="Over budget")


def same_calls(run: str) -> list[tuple[str, Any]]:
    uuid_run = uuid4()
    return [
        ("register a", lambda s: s.register_waiter(run, "a", "go", FUTURE)),
        ("register b", lambda s: s.register_waiter(run, "b", "go")),
        ("register late", lambda s: s.register_waiter(run, "late", "old", PAST)),
        ("deliver", lambda s: s.deliver_signal(run, "go", '{"n": 1}', idempotency_key="k1")),
        ("replay", lambda s: s.deliver_signal(run, "go", '{"n": 2}', idempotency_key="k1")),
        ("fail", lambda s: s.deliver_signal(run, " go ", failure=REJECTED)),
        ("already", lambda s: s.deliver_signal(run, "go", "[]")),
        ("expired", lambda s: s.deliver_signal(run, "old", "{}")),
        ("not found", lambda s: s.deliver_signal(run, "nobody", "{}")),
        ("buffer", lambda s: s.deliver_signal(run, "early", '"x"', buffer_for=timedelta(hours=1))),
        (
            "buffer again",
            lambda s: s.deliver_signal(
                run, "early", '"y"', buffer_for=timedelta(hours=2), idempotency_key="k2"
            ),
        ),
        ("signals", lambda s: s.list_buffered_signals(run)),
        ("register c", lambda s: s.register_waiter(run, "c", "early")),
        ("signals after", lambda s: s.list_buffered_signals(run)),
        (
            "register q",
            lambda s: s.register_waiter(
                run, "q", "pay", deciders=["email:Ana@Example.com", "sub:b"], quorum=2
            ),
        ),
        ("nobody may decide", lambda s: s.deliver_signal(run, "pay", "{}")),
        ("get", lambda s: s.get_waiter(run, "a")),
        ("get missing", lambda s: s.get_waiter(run, "missing")),
        ("list", lambda s: s.list_waiters(run)),
        ("list by name", lambda s: s.list_waiters(run, signal_name="go")),
        ("signal's waiters", lambda s: s.signal_waiters(run, "go")),
        ("page", lambda s: s.list_waiters_page(run, limit=2)),
        (
            "next page",
            lambda s: s.list_waiters_page(
                run, limit=2, after=s.list_waiters_page(run, limit=2)[-1].position
            ),
        ),
        (
            "page by name",
            lambda s: s.list_waiters_page(
                run,
                limit=1,
                after=s.list_waiters_page(run, limit=1, signal_name="go")[0].position,
                signal_name="go",
            ),
        ),
        ("remove", lambda s: s.remove_waiter(run, "b")),
        ("remove again", lambda s: s.remove_waiter(run, "b")),
        ("get removed", lambda s: s.get_waiter(run, "b")),
        ("a uuid", lambda s: s.register_waiter(str(uuid_run).upper(), "s", "go")),
        ("the uuid", lambda s: s.get_waiter(uuid_run, "s")),
        ("padded run", lambda s: s.register_waiter(" padded ", "s", "go")),
        ("naive", lambda s: s.register_waiter(run, "s", "go", datetime(2030, 1, 1))),
        (
            "quorum",
            lambda s: s.register_waiter(run, "s", "go", deciders=["sub:x"], quorum=2),
        ),
        ("not json", lambda s: s.deliver_signal(run, "go", "{not json")),
        ("too large", lambda s: s.deliver_signal(run, "go", json.dumps("a" * 262_143))),
        ("neither", lambda s: s.deliver_signal(run, "go")),
        ("both", lambda s: s.deliver_signal(run, "go", "{}", failure=REJECTED)),
        ("key", lambda s: s.deliver_signal(run, "go", "{}", idempotency_key="clé")),
        ("buffer", lambda s: s.deliver_signal(run, "go", "1", buffer_for=timedelta(days=31))),
        ("no step key", lambda s: s.get_waiter(run, "")),
        ("no run", lambda s: s.list_waiters("")),
        ("no limit", lambda s: s.list_waiters_page(run, limit=0)),
    ]


def answer_of(store: Any, call: Any) -> Any:
    try:
        return comparable(call(store))
    except (FlowSignalError, ValueError) as error:
        return comparable(error)


def test_the_client_answers_as_the_memory_store(client: FlowSignalsClient, run: str) -> None:
    memory = InMemoryFlowSignalStore()
    differences = []
    for name, call in same_calls(run):
        expected, got = answer_of(memory, call), answer_of(client, call)
        if type(expected) is tuple and expected[0] == "NotAllowedToDecide":
            expected, got = expected[0], got[0]  # the API words its message for HTTP callers
        if expected != got:
            differences.append((name, expected, got))
    assert differences == []
