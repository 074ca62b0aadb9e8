"""Approval links as a hostile tester tries them (docs/contract.md, Approval links): links
too large for a row, text that hides itself, one minting deciding twice, look-alike payloads,
rows the store cannot parse, key rotation and forged key ids, HEAD on make run."""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from html import unescape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from aws_lambda_powertools import Metrics
from botocore.stub import Stubber
from test_approval_links import (
    BASE,
    KEY,
    MINT,
    RUN,
    call,
    mint,
    page,
    register,
    sign,
    token_of,
    waiter,
)

from conftest import (
    TABLE_NAME,
    FakeClock,
    reset_runtime,
    running_local_server,
    silent_endpoint,
)
from flowsignals import (
    FlowSignalError,
    InMemoryFlowSignalStore,
    InvalidSignalRequest,
    SignalFailure,
    StoreUnavailable,
)
from flowsignals.backends.aws import aws_client
from flowsignals.lambdas.approvals.keys import (
    REFRESH_SECONDS,
    FixedLinkKeys,
    LinkKey,
    SecretsManagerLinkKeys,
)
from flowsignals.lambdas.approvals.pages import approval_page
from flowsignals.lambdas.approvals.schemas import MintLinksBody
from flowsignals.lambdas.approvals.service import Approval, ApprovalService
from flowsignals.lambdas.service import SignalService
from flowsignals.testing import FakeLambdaContext
from template_yaml import load_handler

PAGE = "GET /approvals/{token}"
LATER = datetime.now(UTC) + timedelta(days=1)

# Five actions whose causes are 32,768 characters (the contract's limit) of CJK text: each
# cause is 96 KiB of UTF-8, so the link's row is ~480 KB, over DynamoDB's 400 KB per item.
# The request itself (~1 MB as \u escapes, ~490 KB as UTF-8) is under the 1 MiB body limit.
BIG_ACTIONS = {f"a{i}": {"failure": {"error": "Rejected", "cause": "名" * 32768}} for i in range(5)}


def _decided(answer: dict[str, Any]) -> str:
    found = re.search(r"<dt>Decided</dt><dd>(.*?)</dd>", answer["body"])
    assert found is not None, answer["body"]
    return unescape(found[1])


# --- minting: bad input is a 400 / InvalidSignalRequest, never a 500 ----------------------


def test_a_link_too_large_for_one_row_is_refused_as_400_not_500(links: Any) -> None:
    answer = call(MINT, {"runId": RUN, "signalName": "approve"}, {"actions": BIG_ACTIONS})
    assert answer["statusCode"] in (400, 413), answer["body"]
    assert json.loads(answer["body"])["code"] in ("InvalidRequest", "PayloadTooLarge")
    assert links.scan(TableName=TABLE_NAME)["Items"] == []


def test_the_links_function_refuses_a_link_too_large_as_invalid_signal_request(
    links: Any,
) -> None:
    handler = load_handler("LinksFunction")
    event = {"runId": RUN, "signalName": "approve", "actions": BIG_ACTIONS}
    with pytest.raises(Exception) as raised:  # noqa: PT011 (the exact type is the point)
        handler(event, FakeLambdaContext())
    assert type(raised.value).__name__ == "InvalidSignalRequest", repr(raised.value)
    assert isinstance(raised.value, InvalidSignalRequest)


@pytest.mark.parametrize(
    "body",
    [
        {"approver": "\u202etxt.exe"},  # RIGHT-TO-LEFT OVERRIDE: shown reversed
        {"approver": "\u200b"},  # ZERO WIDTH SPACE only: "Decided by" shows nothing
        {"actions": {"ok": {"label": "Reject\u202e"}}},
        {"actions": {"ok": {"label": "\u2066Approve\u2069"}}},
    ],
)
def test_shown_text_refuses_bidi_controls_and_invisible_characters(
    links: Any, body: dict[str, Any]
) -> None:
    """The approver and the labels are shown to the person deciding: text that reorders or
    hides itself lets a link say something else than what it does."""
    answer = call(MINT, {"runId": RUN, "signalName": "approve"}, body)
    assert answer["statusCode"] == 400, answer["body"]


# --- what a page shows: every value as it is, none hiding or reordering the page ----------

# One of each kind of character that hides itself or turns the text around it.
HIDING_CHARACTERS = {
    "override": "\u202e",  # RIGHT-TO-LEFT OVERRIDE (and embeddings, U+202A-U+202D)
    "isolate": "\u2067",  # RIGHT-TO-LEFT ISOLATE (U+2066-U+2069)
    "mark": "\u200f",  # RIGHT-TO-LEFT MARK
    "arabic mark": "\u061c",
    "zero width": "\u200b",
    "byte order mark": "\ufeff",
    "tag": "\U000e0041",  # TAG LATIN CAPITAL LETTER A
    "paragraph separator": "\u2029",  # ends a bidi paragraph
    "filler": "\u3164",  # HANGUL FILLER: a letter drawn as nothing
    "private use": "\ue000",
    "unassigned": "\U000e0080",
}


def approvals_in_memory(clock: FakeClock) -> tuple[InMemoryFlowSignalStore, ApprovalService]:
    store = InMemoryFlowSignalStore(clock=clock)
    signals = SignalService(store, Metrics(namespace="FlowSignalsTest"))
    keys = FixedLinkKeys(LinkKey(**KEY))
    return store, ApprovalService(signals, store, store, keys, clock)


def shown(approval: Approval) -> tuple[str, str]:
    """The page's HTML, and its words as a person reads them."""
    _, html = approval_page(approval)
    return html, " ".join(unescape(re.sub(r"<[^>]+>", "", html)).split())


@pytest.mark.parametrize("character", HIDING_CHARACTERS.values(), ids=HIDING_CHARACTERS)
def test_every_value_on_a_page_shows_hiding_characters_as_their_code_points(
    clock: FakeClock, character: str
) -> None:
    """Run ids, signal names, step keys, failure errors and who decided are the callers'
    text: a character that hides itself or reverses what follows is shown as <U+XXXX>."""
    store, approvals = approvals_in_memory(clock)
    run, signal, step = f"run{character}1", f"sign{character}al", f"step{character}2"
    error, by = f"Rej{character}ected", f"ana{character}@example.com"
    token = token_of(approvals.mint(run, signal, MintLinksBody(), BASE)["links"]["approve"])
    code = f"<U+{ord(character):04X}>"

    nothing, _ = shown(approvals.inspect(token))  # no step waits yet
    store.register_waiter(run, step, signal)
    waiting, waiting_words = shown(approvals.inspect(token))
    store.deliver_signal(run, signal, failure=SignalFailure(error=error), delivered_by=by)
    decided, decided_words = shown(approvals.inspect(token))

    for html in (nothing, waiting, decided):
        assert character not in html
        assert 'class="char"' in html  # marked as a character, not the value's own text
    for value in (run, signal, step):
        assert value.replace(character, code) in waiting_words
    for value in (run, step, error, by):
        assert value.replace(character, code) in decided_words


# --- deciding -----------------------------------------------------------------------------


def test_one_set_of_links_decides_at_most_one_step(links: Any) -> None:
    """A person approves; later the run waits for the same signal again (a second round). The
    reject link of the first e-mail must not decide the second round: the links were sent for
    one decision, and the contract says another decision first is a 409."""
    urls = mint()
    register(step="round-1")
    assert page("POST", urls["approve"])["statusCode"] == 200
    register(step="round-2")
    answer = page("POST", urls["reject"])
    assert answer["statusCode"] == 409, answer["statusCode"]
    assert waiter("round-2")["state"] == "Waiting"


def test_the_page_never_calls_a_payload_of_1_an_approval(links: Any) -> None:
    """{"approved": 1} is not {"approved": true}: the example state machine (IsBoolean) does
    not approve it, so the page must not say "Approve"."""
    urls = mint()
    register()
    delivered = call(
        "POST /runs/{runId}/signals/{signalName}",
        {"runId": RUN, "signalName": "approve"},
        {"approved": 1},
    )
    assert delivered["statusCode"] == 200
    answer = page("GET", urls["approve"])
    assert answer["statusCode"] == 409
    assert _decided(answer) != "Approve"


def test_a_stored_payload_that_is_not_i_json_does_not_break_the_page(links: Any) -> None:
    """A row delivered before the store checked I-JSON (values.read_payload: "so it never breaks
    a read") holds e.g. 1e400; the page of a link to its step must still answer, not 500."""
    urls = mint()
    register()
    links.update_item(
        TableName=TABLE_NAME,
        Key={"RunId": {"S": RUN}, "StepKey": {"S": "manager-approval"}},
        UpdateExpression="SET DeliveredAt = :at, PayloadJson = :payload",
        ExpressionAttributeValues={
            ":at": {"S": "2026-01-01T00:00:00.000Z"},
            ":payload": {"S": "1e400"},
        },
    )
    for method in ("GET", "HEAD", "POST"):
        answer = page(method, urls["approve"])
        assert answer["statusCode"] == 409, (method, answer["statusCode"])


# --- keys ---------------------------------------------------------------------------------


def test_after_a_rotation_a_warm_process_accepts_links_signed_with_the_new_key(
    fresh_runtime: Any,
) -> None:
    """The links function (cold, or its cache expired) signs with the new key at once; the
    approvals function, warm, must not call those links forged for up to 5 minutes (only
    until it may read the secret again: REFRESH_SECONDS, the time a link takes to be mailed
    and clicked)."""
    secrets = boto3.client("secretsmanager")
    arn = secrets.create_secret(Name="links", SecretString=json.dumps(KEY))["ARN"]
    now = [0.0]
    warm = SecretsManagerLinkKeys(arn, client=secrets, clock=lambda: now[0])
    assert warm.key_for("test") == KEY["key"].encode()  # it has served pages already
    rotated = {"keyId": "k2", "key": "n" * 40}
    secrets.put_secret_value(SecretId=arn, SecretString=json.dumps(rotated))
    signer = SecretsManagerLinkKeys(arn, client=secrets)
    assert signer.signing_key().keyId == "k2"
    now[0] += REFRESH_SECONDS
    assert warm.key_for("k2") == b"n" * 40
    assert warm.signing_key().keyId == "k2"


def test_forged_key_ids_do_not_each_cost_a_secrets_manager_call(fresh_runtime: Any) -> None:
    """The pages need no identity: a stream of tokens naming unknown key ids (no signature
    needed to get that far) must not turn into one GetSecretValue each."""
    secrets = boto3.client("secretsmanager")
    arn = secrets.create_secret(Name="links", SecretString=json.dumps(KEY))["ARN"]
    keys = SecretsManagerLinkKeys(arn, client=secrets)
    keys.signing_key()
    calls: list[str] = []
    secrets.meta.events.register(
        "before-send.secrets-manager", lambda **_: calls.append("GetSecretValue")
    )
    for i in range(20):
        assert keys.key_for(f"forged{i}") is None
    assert len(calls) <= 1, len(calls)


# A previous version of the secret that is not a key, each way it can be wrong.
MALFORMED_VERSIONS = {
    "not JSON": {"SecretString": "old-secret-value{"},
    "not an object": {"SecretString": '["old-secret-value"]'},
    "no key": {"SecretString": json.dumps({"keyId": "old", "secret": "old-secret-value"})},
    "short key": {"SecretString": json.dumps({"keyId": "old", "key": "old-secret-value"})},
    "bad key id": {"SecretString": json.dumps({"keyId": "o l d", "key": "old-secret-value" * 3})},
    "binary": {"SecretBinary": b"old-secret-value"},
}


def _secret(previous: dict[str, Any], current: dict[str, Any]) -> tuple[Any, str]:
    """Moto's Secrets Manager with a secret whose AWSPREVIOUS is ``previous``."""
    secrets = boto3.client("secretsmanager")
    arn: str = secrets.create_secret(Name="links", **previous)["ARN"]
    secrets.put_secret_value(SecretId=arn, **current)
    return secrets, arn


@pytest.mark.parametrize("previous", MALFORMED_VERSIONS.values(), ids=MALFORMED_VERSIONS)
def test_a_malformed_previous_key_is_ignored_and_logged_without_its_value(
    fresh_runtime: Any, logs: io.StringIO, previous: dict[str, Any]
) -> None:
    """A rotation that once stored something wrong must not stop every link, while the
    current key is a good one: the previous version is skipped, and the log says so."""
    secrets, arn = _secret(previous, {"SecretString": json.dumps(KEY)})
    keys = SecretsManagerLinkKeys(arn, client=secrets)
    assert keys.signing_key().keyId == "test"
    assert keys.key_for("test") == KEY["key"].encode()
    assert keys.key_for("old") is None
    logged = logs.getvalue()
    assert "AWSPREVIOUS" in logged and "ignored" in logged, logged
    assert "old-secret-value" not in logged


def test_links_work_while_the_previous_key_is_malformed(
    links: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the functions run: minted, opened and clicked under the secret's current key."""
    _, arn = _secret(MALFORMED_VERSIONS["short key"], {"SecretString": json.dumps(KEY)})
    monkeypatch.setenv("LINK_SECRET_ID", arn)
    reset_runtime()
    urls = mint()
    register()
    assert page("GET", urls["approve"])["statusCode"] == 200
    assert page("POST", urls["approve"])["statusCode"] == 200
    assert waiter()["payload"] == {"approved": True}


@pytest.mark.parametrize("current", MALFORMED_VERSIONS.values(), ids=MALFORMED_VERSIONS)
def test_a_malformed_current_key_fails_clearly_without_its_value(
    links: Any, logs: io.StringIO, monkeypatch: pytest.MonkeyPatch, current: dict[str, Any]
) -> None:
    """The current version signs every new link: without it nothing can work, so it is a
    configuration error (a good previous version does not hide it)."""
    good_previous = {"SecretString": json.dumps(KEY)}
    secrets, arn = _secret(good_previous, current)
    with pytest.raises(FlowSignalError) as raised:
        SecretsManagerLinkKeys(arn, client=secrets).key_for("test")
    assert "misconfigured" in str(raised.value) and "AWSCURRENT" in str(raised.value)
    assert "old-secret-value" not in str(raised.value)
    assert not isinstance(raised.value, StoreUnavailable)

    monkeypatch.setenv("LINK_SECRET_ID", arn)
    reset_runtime()
    opened = call(PAGE, {"token": token_of(sign("0" * 32, "approve", LATER))})
    assert opened["statusCode"] == 500
    logged = logs.getvalue()
    assert "misconfigured" in logged and "AWSCURRENT" in logged
    assert "old-secret-value" not in logged


def test_a_missing_secret_is_a_configuration_error_naming_it(fresh_runtime: Any) -> None:
    keys = SecretsManagerLinkKeys("no-such-secret", client=boto3.client("secretsmanager"))
    with pytest.raises(FlowSignalError, match="misconfigured: no secret no-such-secret") as raised:
        keys.signing_key()
    assert not isinstance(raised.value, StoreUnavailable)


def _stubbed_secrets(code: str, status: int) -> Any:
    client = aws_client("secretsmanager")
    stubber = Stubber(client)
    stubber.add_client_error("get_secret_value", service_error_code=code, http_status_code=status)
    stubber.activate()
    return client


@pytest.mark.parametrize(
    ("code", "status"), [("ThrottlingException", 400), ("InternalServiceError", 500)]
)
def test_a_throttled_or_failing_secrets_manager_is_store_unavailable(
    fresh_runtime: Any, code: str, status: int
) -> None:
    """As DynamoDB's: "try later", the name a state machine retries on."""
    keys = SecretsManagerLinkKeys("links", client=_stubbed_secrets(code, status))
    with pytest.raises(Exception) as raised:  # noqa: PT011 (the exact type is the point)
        keys.signing_key()
    assert type(raised.value) is StoreUnavailable, repr(raised.value)


def test_a_refusal_by_secrets_manager_is_a_clear_error_not_store_unavailable(
    fresh_runtime: Any,
) -> None:
    keys = SecretsManagerLinkKeys("links", client=_stubbed_secrets("AccessDeniedException", 400))
    with pytest.raises(FlowSignalError, match="AccessDeniedException") as raised:
        keys.signing_key()
    assert not isinstance(raised.value, StoreUnavailable)


@contextlib.contextmanager
def throttling_endpoint(asked: list[str]) -> Iterator[str]:
    """An endpoint that answers every request as a throttled AWS JSON service does, noting
    each in ``asked``."""

    class Throttle(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            asked.append(self.headers.get("X-Amz-Target", ""))
            body = json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"})
            self.send_response(400)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Throttle)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# Time left to the invocation: one attempt (at most 4 s) fits, a retry after it does not.
REMAINING_SECONDS = 6


def _in_time(enter: Callable[[Any], Any]) -> Any:
    """What a function invoked with REMAINING_SECONDS left answers, checked to come in time."""
    started = time.monotonic()
    try:
        return enter(FakeLambdaContext(remaining_time_in_millis=REMAINING_SECONDS * 1000))
    finally:
        assert time.monotonic() - started < REMAINING_SECONDS, "after the function's timeout"


def _every_entrance_is_a_503_in_time(
    links: Any, monkeypatch: pytest.MonkeyPatch, secrets_manager: str
) -> None:
    """A page, a 503 problem, StoreUnavailable directly: each before the function's own
    timeout (never a 500, never a hang), and no link minted."""
    monkeypatch.setenv("LINK_SECRET_ID", "links")
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", secrets_manager)
    reset_runtime()
    token = token_of(sign("0" * 32, "approve", LATER))
    minting = {"runId": RUN, "signalName": "approve"}
    for route, parameters in [(PAGE, {"token": token}), (MINT, minting)]:
        answer = _in_time(partial(call, route, parameters, None))
        assert answer["statusCode"] == 503, (route, answer["body"])
        assert "retry-after" in {name.lower() for name in answer["headers"]}
    with pytest.raises(Exception) as raised:  # noqa: PT011 (the exact type is the point)
        _in_time(lambda context: load_handler("LinksFunction")(minting, context))
    assert type(raised.value).__name__ == "StoreUnavailable", repr(raised.value)
    assert links.scan(TableName=TABLE_NAME)["Items"] == [], "nothing minted"
    reset_runtime()


def test_a_secrets_manager_that_never_answers_is_a_503_in_time(
    links: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key is read within the function's time, as the table is."""
    with silent_endpoint() as secrets_manager:
        _every_entrance_is_a_503_in_time(links, monkeypatch, secrets_manager)


def test_a_throttling_secrets_manager_is_a_503_in_time(
    links: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []
    with throttling_endpoint(asked) as secrets_manager:
        _every_entrance_is_a_503_in_time(links, monkeypatch, secrets_manager)
    assert set(asked) == {"secretsmanager.GetSecretValue"}, "throttled, not just out of time"


# --- make run -----------------------------------------------------------------------------


def test_head_of_an_approval_page_on_make_run_tells_no_false_content_length() -> None:
    """RFC 9110 §8.6: a HEAD answer's Content-Length, if sent, is the length GET's body has."""
    with running_local_server() as base:
        url = urlsplit(base)
        connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)

        def ask(method: str, path: str, body: str | None = None) -> http.client.HTTPResponse:
            connection.request(method, path, body=body)
            return connection.getresponse()

        register_body = json.dumps({"signalName": "approve", "timeoutSeconds": 3600})
        assert ask("PUT", "/runs/r1/waiters/s1", register_body).read()
        minted = json.loads(ask("POST", "/runs/r1/signals/approve/links", "{}").read())
        path = urlsplit(minted["links"]["approve"]).path
        shown = ask("GET", path)
        body = shown.read()
        assert shown.status == 200 and len(body) > 0
        head = ask("HEAD", path)
        head.read()
        assert head.status == 200
        length = head.getheader("Content-Length")
        assert length is None or int(length) == len(body), (length, len(body))
