"""Approval links as a hostile tester tries them (docs/contract.md, Approval links): links
too large for a row, text that hides itself, one minting deciding twice, look-alike payloads,
rows the store cannot parse, key rotation and forged key ids, HEAD on make run."""

from __future__ import annotations

import http.client
import json
import re
from html import unescape
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from test_approval_links import KEY, MINT, RUN, call, mint, page, register, waiter

from conftest import TABLE_NAME, running_local_server
from flowsignals import InvalidSignalRequest
from flowsignals.lambdas.approvals.keys import REFRESH_SECONDS, SecretsManagerLinkKeys
from flowsignals.testing import FakeLambdaContext
from template_yaml import load_handler

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
