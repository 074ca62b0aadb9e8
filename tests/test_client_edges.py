"""The edges a caller of the client and the `flowsignals` command meets, on stub servers: answers
that are not this API's, lost answers and retries, Retry-After, bad options, exit codes."""

from __future__ import annotations

import contextlib
import inspect
import json
import re
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from api_stub import DELIVERED, DROP, HANG, UNAVAILABLE, WAITER, Answer, Stub, problem, stub_server
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dynamodb_local import free_port
from flowsignals import (
    FlowSignalError,
    InMemoryFlowSignalStore,
    InvalidSignalRequest,
    SignalDeliveryStatus,
    SignalFailure,
    StoreUnavailable,
)
from flowsignals.client import FlowSignalsClient
from flowsignals.client import cli as cli_module
from flowsignals.client import client as client_module
from flowsignals.client.cli import main
from flowsignals.core.links import LinkAction

README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.fixture
def stub() -> Iterator[Stub]:
    with stub_server() as state:
        yield state


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The delays the client waits between attempts (recorded, not slept)."""
    slept: list[float] = []
    monkeypatch.setattr(client_module, "_sleep", slept.append)
    return slept


def closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --- only this API's answers count -----------------------------------------------------------

OPERATIONS: dict[str, Callable[[FlowSignalsClient], Any]] = {
    "register_waiter": lambda c: c.register_waiter("run", "step", "go"),
    "deliver_signal": lambda c: c.deliver_signal("run", "go", "{}"),
    "deliver a failure": lambda c: c.deliver_signal("run", "go", failure=SignalFailure(error="E")),
    "get_waiter": lambda c: c.get_waiter("run", "step"),
    "remove_waiter": lambda c: c.remove_waiter("run", "step"),
    "list_waiters": lambda c: c.list_waiters("run"),
    "list_buffered_signals": lambda c: c.list_buffered_signals("run"),
    "create_links": lambda c: c.create_links("run", "go"),
}

HTML = {"Content-Type": "text/html; charset=utf-8"}
# Answers no route of the API gives: a wrong api_url, a proxy, a captive portal...
FOREIGN: dict[str, Answer] = {
    "200 text/html": (200, HTML, b"<html><body>Welcome</body></html>"),
    "200 JSON of another shape": (200, {}, {"ok": True}),
    "200 junk labelled JSON": (200, {"Content-Type": "application/json"}, b"\x00junk"),
    "200 an empty body": (200, {"Content-Type": "application/json"}, b""),
    "201 a waiter": (201, {}, WAITER),
    "202 an empty object": (202, {}, {}),
    "204 no content": (204, {}, b""),
    "404 text/html": (404, HTML, b"<h1>Not Found</h1>"),
    "409 JSON that is no problem": (409, {}, {"code": "AlreadyDelivered"}),
    "410 a problem of another status": (410, {}, problem(400, "Expired", "gone")),
    "503 text/html": (503, HTML | {"Retry-After": "0"}, b"<html>maintenance</html>"),
    "500 text/plain": (500, {"Content-Type": "text/plain"}, b"oops"),
}


@pytest.mark.parametrize("answer", FOREIGN.values(), ids=FOREIGN.keys())
@pytest.mark.parametrize("operation", OPERATIONS.values(), ids=OPERATIONS.keys())
def test_an_answer_that_is_not_this_apis_is_a_flow_signal_error(
    stub: Stub, operation: Callable[[FlowSignalsClient], Any], answer: Answer
) -> None:
    stub.answers = [answer]
    with pytest.raises(FlowSignalError) as raised:
        operation(FlowSignalsClient(stub.url))
    assert type(raised.value) is FlowSignalError, raised.value
    assert "not the flowsignals API's" in str(raised.value)


@pytest.mark.parametrize(
    "answer",
    [
        (200, {}, WAITER),  # a waiter, as GET answers it: no delivery
        (202, {}, WAITER),
        (200, {}, DELIVERED[2] | {"delivered": False}),
        (200, {}, DELIVERED[2] | {"deliveredAt": "yesterday"}),
        (202, {}, {"delivered": False, "buffered": True, "bufferedUntil": 7, "replayed": False}),
        (409, {}, problem(409, "AlreadyDelivered", "taken")),  # without stepKey, deliveredAt
        (404, {"Content-Type": "application/json"}, problem(404, "NotFound", "none")),
    ],
)
def test_a_delivery_reads_only_the_answers_of_its_route(stub: Stub, answer: Answer) -> None:
    stub.answers = [answer]
    with pytest.raises(FlowSignalError) as raised:
        FlowSignalsClient(stub.url).deliver_signal("run", "go", "{}")
    assert type(raised.value) is FlowSignalError


def test_an_answer_larger_than_any_of_the_apis_is_not_read_whole(stub: Stub) -> None:
    huge = b'{"waiters": [], "nextToken": null, "padding": "' + b"x" * 7_000_000 + b'"}'
    stub.answers = [(200, {"Content-Type": "application/json"}, huge)]
    with pytest.raises(FlowSignalError, match="larger than") as raised:
        FlowSignalsClient(stub.url).list_waiters("run")
    assert type(raised.value) is FlowSignalError


def test_remove_is_not_reported_done_on_a_204_from_a_server_that_is_not_the_api(
    stub: Stub,
) -> None:
    stub.answers = [(204, {}, b""), (200, HTML, b"<html>home</html>")]
    with pytest.raises(FlowSignalError, match="not the flowsignals API's"):
        FlowSignalsClient(stub.url).remove_waiter("run", "step")
    assert [r.method for r in stub.requests] == ["DELETE", "GET"]


def test_remove_reads_back_that_the_waiter_is_gone(stub: Stub) -> None:
    stub.answers = [(204, {}, b""), (404, {}, problem(404, "NotFound", "none"))]
    FlowSignalsClient(stub.url).remove_waiter("run", "step")
    assert [(r.method, r.path) for r in stub.requests] == [
        ("DELETE", "/runs/run/waiters/step"),
        ("GET", "/runs/run/waiters/step"),
    ]


def test_the_cli_exits_4_on_an_answer_that_is_not_this_apis(
    stub: Stub, capsys: pytest.CaptureFixture[str]
) -> None:
    stub.answers = [FOREIGN["200 text/html"]]
    for argv in (
        ["deliver", "run", "go"],
        ["fail", "run", "go", "--error", "E"],
        ["remove", "r", "s"],
    ):
        code, out, err = cli(capsys, "--api-url", stub.url, *argv)
        assert (code, out) == (4, ""), argv
        assert "not the flowsignals API's" in err
    stub.answers = [(202, {}, {"delivered": False})]
    code, out, _ = cli(capsys, "--api-url", stub.url, "deliver", "run", "go")
    assert (code, out) == (4, "")


# --- retries never deliver twice -----------------------------------------------------------


def test_a_lost_answer_is_retried_under_the_same_key(stub: Stub, waits: list[float]) -> None:
    stub.answers = [DROP, DROP, DELIVERED]
    result = FlowSignalsClient(stub.url).deliver_signal("run", "go", "{}")
    assert result.status is SignalDeliveryStatus.DELIVERED
    keys = {r.headers["Idempotency-Key"] for r in stub.requests}
    assert len(stub.requests) == 3 and len(keys) == 1
    assert result.idempotency_key in keys
    assert len(waits) == 2


def test_the_key_of_a_delivery_is_on_its_result(stub: Stub) -> None:
    client = FlowSignalsClient(stub.url)
    given = client.deliver_signal("run", "go", "{}", idempotency_key="click-1")
    made = client.deliver_signal("run", "go", "{}")
    assert given.idempotency_key == "click-1"
    assert made.idempotency_key == stub.requests[1].headers["Idempotency-Key"] != "click-1"


@pytest.mark.parametrize(
    "failure", [DROP, UNAVAILABLE, (429, {}, {"message": "Too Many Requests"})]
)
def test_store_unavailable_names_the_key_a_retry_must_reuse(
    stub: Stub, waits: list[float], failure: Answer
) -> None:
    stub.answers = [failure]
    client = FlowSignalsClient(stub.url, max_retries=2)
    with pytest.raises(StoreUnavailable) as raised:
        client.deliver_signal("run", "go", failure=SignalFailure(error="Rejected"))
    sent = {r.headers["Idempotency-Key"] for r in stub.requests}
    assert len(stub.requests) == 3 and sent == {raised.value.idempotency_key}
    stub.answers = [DELIVERED]
    client.deliver_signal("run", "go", "{}", idempotency_key=raised.value.idempotency_key)
    assert stub.requests[-1].headers["Idempotency-Key"] == raised.value.idempotency_key


def test_a_request_that_times_out_is_retried(waits: list[float]) -> None:
    with stub_server(HANG) as slow:
        client = FlowSignalsClient(slow.url, timeout=0.2, max_retries=1)
        with pytest.raises(StoreUnavailable, match="after 1 retry"):
            client.get_waiter("run", "step")
        assert len(slow.requests) == 2


def test_a_certificate_that_does_not_verify_is_not_retried_as_unavailable(
    tmp_path: Path, waits: list[float]
) -> None:
    with (
        https_stub(tmp_path) as url,
        pytest.raises(FlowSignalError, match="TLS certificate") as raised,
    ):
        FlowSignalsClient(url).get_waiter("run", "step")
    assert type(raised.value) is FlowSignalError
    assert waits == []


@contextlib.contextmanager
def https_stub(directory: Path) -> Iterator[str]:
    """An HTTPS server on 127.0.0.1 with a self-signed certificate no client trusts."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    pem = directory / "stub.pem"
    pem.write_bytes(
        certificate.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pem)
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_the_cli_prints_the_key_to_retry_with_on_exit_3(
    stub: Stub, waits: list[float], capsys: pytest.CaptureFixture[str]
) -> None:
    stub.answers = [DROP]
    code, out, err = cli(capsys, "--api-url", stub.url, "deliver", "run", "go")
    key = stub.requests[0].headers["Idempotency-Key"]
    assert (code, out) == (3, "")
    assert f"--idempotency-key {key}" in err
    assert {r.headers["Idempotency-Key"] for r in stub.requests} == {key}

    code, _, err = cli(
        capsys,
        "--api-url",
        stub.url,
        "fail",
        "run",
        "go",
        "--error",
        "E",
        "--idempotency-key",
        "k1",
    )
    assert code == 3 and "--idempotency-key k1" in err
    assert stub.requests[-1].headers["Idempotency-Key"] == "k1"


def test_the_cli_prints_the_key_of_a_delivery(
    stub: Stub, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = cli(capsys, "--api-url", stub.url, "deliver", "run", "go")
    assert code == 0
    assert json.loads(out)["idempotencyKey"] == stub.requests[0].headers["Idempotency-Key"]


# --- Retry-After -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("retry_after", "wait"),
    [
        ("2", 2.0),
        ("3600", client_module.MAX_RETRY_AFTER_SECONDS),
        ("9" * 5000, client_module.MAX_RETRY_AFTER_SECONDS),
        ("²", None),
        ("1e3", None),
        ("-5", None),
        ("+5", None),
        ("5.5", None),
        ("", None),
        ("soon", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # past: at once
        ("Fri, 31 Dec 9999 23:59:59 GMT", client_module.MAX_RETRY_AFTER_SECONDS),
        ("Mon, 01 Jan 99999 00:00:00 GMT", None),
        ("Mon, 32 Jan 2026 00:00:00 GMT", None),
        ("Mon, 01 Jan 2026 00:00:00 -0000", None),
    ],
)
def test_retry_after_is_read_when_valid_ignored_otherwise_and_capped(
    stub: Stub, waits: list[float], retry_after: str, wait: float | None
) -> None:
    busy = (503, {"Retry-After": retry_after}, problem(503, "ServiceUnavailable", "busy"))
    stub.answers = [busy, DELIVERED]
    result = FlowSignalsClient(stub.url).deliver_signal("run", "go", "{}")
    assert result.status is SignalDeliveryStatus.DELIVERED
    assert waits == [client_module.backoff(1) if wait is None else wait]


def test_the_backoff_grows_and_is_capped() -> None:
    delays = [client_module.backoff(retry) for retry in range(1, 12)]
    assert delays == sorted(delays) and delays[0] > 0
    assert delays[-1] == client_module.MAX_RETRY_AFTER_SECONDS


# --- the command line: usage errors are 2, a crash is never an answer's code -----------------


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (["--api-url", "http://[::1"], "--api-url"),
        (["--api-url", "http://127.0.0.1:99999"], "--api-url"),
        (["--api-url", "ftp://example.com"], "--api-url"),
        (["--api-url", "http://user:secret@example.com"], "--api-url"),
        (["--api-url", "http://example.com/?q=1"], "--api-url"),
        (["--api-url", "http://exa mple.com"], "--api-url"),
        (["--timeout", "inf"], "--timeout"),
        (["--timeout", "nan"], "--timeout"),
        (["--timeout", "-1"], "--timeout"),
        (["--timeout", "0"], "--timeout"),
        (["--timeout", "1e9"], "--timeout"),
        (["--timeout", "ten"], "--timeout"),
        (["--retries", "-1"], "--retries"),
        (["--retries", "1000000"], "--retries"),
        (["--retries", "two"], "--retries"),
        (["--retries", "1.5"], "--retries"),
        (["--profile", "no-such-profile-here"], "--profile"),
    ],
)
def test_bad_options_are_usage_errors(
    capsys: pytest.CaptureFixture[str], options: list[str], named: str
) -> None:
    code, out, err = cli(capsys, *options, "get", "run", "step")
    assert (code, out) == (2, "")
    assert named in err and "Traceback" not in err
    assert "secret" not in err


def test_a_bad_api_url_in_the_environment_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(cli_module.API_URL_VARIABLE, "http://[::1")
    code, out, err = cli(capsys, "get", "run", "step")
    assert (code, out) == (2, "") and cli_module.API_URL_VARIABLE in err


def test_a_bad_bearer_token_is_a_usage_error(
    stub: Stub, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(cli_module.BEARER_TOKEN_VARIABLE, "tok\u00e9n")
    code, _, err = cli(capsys, "--api-url", stub.url, "get", "run", "step")
    assert code == 2 and cli_module.BEARER_TOKEN_VARIABLE in err and "tok" not in err
    assert stub.requests == []


@pytest.mark.parametrize(
    "error", [RuntimeError("boom"), KeyError("x"), OverflowError("big"), ValueError("odd")]
)
def test_an_unexpected_failure_has_its_own_exit_code(
    stub: Stub,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    error: Exception,
) -> None:
    def crash(*args: Any, **kwargs: Any) -> Any:
        raise error

    monkeypatch.setattr(FlowSignalsClient, "deliver_signal", crash)
    code, _, err = cli(
        capsys, "--api-url", stub.url, "deliver", "run", "go", "--idempotency-key", "k9"
    )
    assert code == cli_module.EXIT_INTERNAL_ERROR
    assert code not in (0, 1, 2, 3, 4)
    assert type(error).__name__ in err and "--idempotency-key k9" in err


def test_an_interrupt_is_not_an_answer(
    stub: Stub, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(FlowSignalsClient, "get_waiter", interrupted)
    code, _, _ = cli(capsys, "--api-url", stub.url, "get", "run", "step")
    assert code == 130


def test_every_exit_code_is_documented_in_the_help_and_the_readme(
    capsys: pytest.CaptureFixture[str],
) -> None:
    codes = {
        value
        for name, value in vars(cli_module).items()
        if name.startswith("EXIT_") and isinstance(value, int)
    }
    assert codes == {0, 1, 2, 3, 4, 5, 130}
    code, help_text, _ = cli(capsys, "--help")
    assert code == 0
    readme = README.read_text().split("### From Python and the shell")[1].split("\n## ")[0]
    for number in codes:
        assert re.search(rf"^\s+{number}\s+\S", help_text, re.MULTILINE), number
        assert re.search(rf"^\| {number} \|", readme, re.MULTILINE), number


# --- link actions: the HTTP API's model, before anything is sent ---------------------------


@pytest.mark.parametrize(
    ("actions", "named"),
    [
        ('{"ship": {"lable": "Ship it"}}', "lable"),
        ('{"ship": {"payload": {"a": 1}, "failure": {"error": "E"}}}', "payload or failure"),
        ('{"ship": {"failure": {"eror": "E"}}}', "eror"),
        ('{"ship": {"label": "Ship", "extra": 1}}', "extra"),
        ('{"bad name": {}}', "bad name"),
        ('{"ship": []}', "ship"),
        ("{}", "actions"),
    ],
)
def test_the_cli_refuses_link_actions_the_api_refuses(
    stub: Stub, capsys: pytest.CaptureFixture[str], actions: str, named: str
) -> None:
    code, out, err = cli(capsys, "--api-url", stub.url, "link", "run", "go", "--actions", actions)
    assert (code, out) == (2, "")
    assert "--actions" in err and named in err
    assert stub.requests == []


@pytest.mark.parametrize(
    ("action", "named"),
    [
        (LinkAction(label="Ship", payload_json="{}", failure=SignalFailure(error="E")), "not both"),
        (LinkAction(label="Ship", payload_json="{not json"), "actions.ship.payload_json"),
        (LinkAction(label="x" * 300, payload_json="{}"), "actions.ship.label"),
    ],
)
def test_create_links_refuses_actions_the_api_refuses(action: LinkAction, named: str) -> None:
    # Nothing listens there: a request that went out would raise StoreUnavailable instead.
    with pytest.raises(InvalidSignalRequest, match=re.escape(named)):
        FlowSignalsClient(closed_port_url()).create_links("run", "go", actions={"ship": action})


def test_create_links_names_python_arguments(stub: Stub) -> None:
    client = FlowSignalsClient(stub.url)
    with pytest.raises(InvalidSignalRequest, match=r"^expires_in: "):
        client.create_links("run", "go", expires_in=timedelta(days=365))
    assert stub.requests == []


# --- a drop-in for the store ---------------------------------------------------------------


def test_the_client_has_every_method_and_argument_of_the_store() -> None:
    store = InMemoryFlowSignalStore
    for name, method in inspect.getmembers(store, inspect.isfunction):
        if name.startswith("_") or name in {"save_link", "get_link", "record_decision"}:
            continue
        ours = getattr(FlowSignalsClient, name, None)
        assert ours is not None, name
        theirs = inspect.signature(method).parameters
        mine = inspect.signature(ours).parameters
        for parameter in theirs.values():
            assert parameter.name in mine, (name, parameter.name)
            assert mine[parameter.name].kind == parameter.kind, (name, parameter.name)
            assert mine[parameter.name].default == parameter.default, (name, parameter.name)


@pytest.mark.parametrize(
    ("call", "named"),
    [
        (lambda c: c.deliver_signal("r", "go", "{}", delivered_by="ana"), "delivered_by"),
        (
            lambda c: c.deliver_signal("r", "go", "{}", caller_identities=["sub:a"]),
            "caller_identities",
        ),
        (lambda c: c.register_waiter("r", "s", "go", task_token="t"), "task_token"),
    ],
)
def test_what_only_the_request_context_can_say_is_refused_by_name(
    call: Callable[[FlowSignalsClient], Any], named: str
) -> None:
    with pytest.raises(InvalidSignalRequest, match=f"^{named}: "):
        call(FlowSignalsClient(closed_port_url()))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: c.register_waiter(" padded ", "s", "go"), "run_id: "),
        (lambda c: c.register_waiter("r", "", "go"), "step_key: "),
        (lambda c: c.register_waiter("r", "s", "\x00"), "signal_name: "),
        (lambda c: c.register_waiter("r", "s", "go", datetime(2030, 1, 1)), "expires_at: "),
        (lambda c: c.register_waiter("r", "s", "go", timeout_seconds=0), "timeout_seconds: "),
        (
            lambda c: c.register_waiter(
                "r", "s", "go", datetime(2030, 1, 1, tzinfo=UTC), timeout_seconds=5
            ),
            "expires_at and timeout_seconds",
        ),
        (lambda c: c.deliver_signal("r", "go", "{not json"), "payload_json: "),
        (lambda c: c.deliver_signal("r", "go", "{}", idempotency_key="clé"), "idempotency_key: "),
        (
            lambda c: c.deliver_signal("r", "go", "{}", buffer_for=timedelta(days=90)),
            "buffer_for: ",
        ),
        (lambda c: c.list_waiters_page("r", limit=0), "limit: "),
    ],
)
def test_errors_name_the_python_arguments(
    call: Callable[[FlowSignalsClient], Any], message: str
) -> None:
    with pytest.raises(InvalidSignalRequest) as raised:
        call(FlowSignalsClient(closed_port_url()))
    assert message in str(raised.value)
    assert not re.search(
        r"runId|stepKey|signalName|expiresAt|timeoutSeconds|Idempotency-Key", str(raised.value)
    )


@pytest.mark.parametrize(
    ("detail", "call", "message"),
    [
        ("runId: must be 1 to 256 characters, got 300", OPERATIONS["get_waiter"], "run_id: must"),
        (
            "body: must be I-JSON (RFC 7493): it is odd",
            OPERATIONS["deliver_signal"],
            "payload_json: must",
        ),
        (
            "error: is odd; cause: too",
            OPERATIONS["deliver a failure"],
            "failure.error: is odd; failure.cause: too",
        ),
        ("timeoutSeconds: is odd", OPERATIONS["register_waiter"], "timeout_seconds: is odd"),
        ("expiresInSeconds: is odd", OPERATIONS["create_links"], "expires_in: is odd"),
        ("Idempotency-Key: is odd", OPERATIONS["deliver_signal"], "idempotency_key: is odd"),
    ],
)
def test_the_apis_refusals_name_the_python_arguments(
    stub: Stub, detail: str, call: Callable[[FlowSignalsClient], Any], message: str
) -> None:
    stub.answers = [(400, {}, problem(400, "InvalidRequest", detail))]
    with pytest.raises(InvalidSignalRequest) as raised:
        call(FlowSignalsClient(stub.url))
    assert str(raised.value) == message or str(raised.value).startswith(message)


def test_the_cli_names_its_own_options(stub: Stub, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "--api-url", stub.url, "deliver", "run", "go", "--payload", "{bad")
    assert code == 2 and "--payload: must be I-JSON" in err and "payload_json" not in err
    code, _, err = cli(capsys, "--api-url", stub.url, "register", " padded ", "s", "go")
    assert code == 2 and "RUN: must not start or end with whitespace" in err
    code, _, err = cli(capsys, "--api-url", stub.url, "fail", "run", "go", "--error", "x" * 300)
    assert code == 2 and "--error: " in err
    assert stub.requests == []


def test_the_client_and_the_command_import_without_powertools() -> None:
    """They share the API's models, not its runtime: a shell or a script needs no Lambda
    library (a guard: the models they share must stay free of it)."""
    blocked = "import sys; sys.modules['aws_lambda_powertools'] = None; "
    done = subprocess.run(
        [sys.executable, "-c", blocked + "import flowsignals.client.cli; print('ok')"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stderr
