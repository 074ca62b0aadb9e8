"""Approval links (docs/contract.md, Approval links): minting, the signed token, and the pages a
person opens and clicks — as the functions answer API Gateway's events."""

from __future__ import annotations

import importlib
import io
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html import unescape
from typing import Any
from uuid import uuid4

import boto3
import pytest
from aws_lambda_powertools import Metrics
from test_template import grants

from conftest import LINK_BASE, LINK_KEY, TABLE_NAME, FakeClock, make_backend, reset_runtime
from flowsignals import FlowSignalError, InvalidSignalRequest
from flowsignals.backends import dynamodb as dynamodb_backend
from flowsignals.core.links import (
    ApprovalLink,
    BadLinkToken,
    LinkAction,
    LinkDecision,
    LinkToken,
)
from flowsignals.lambdas import runtime
from flowsignals.lambdas.approvals.keys import FixedLinkKeys, LinkKey, SecretsManagerLinkKeys
from flowsignals.lambdas.approvals.pages import approval_page
from flowsignals.lambdas.approvals.schemas import MintLinksBody
from flowsignals.lambdas.approvals.service import Approval, ApprovalService
from flowsignals.lambdas.service import SignalService
from flowsignals.testing import FakeLambdaContext, http_api_event, record_requests
from template_yaml import functions, load_handler

KEY = LINK_KEY
ROUTES_MODULE = "flowsignals.lambdas.approvals.routes"
HANDLERS_MODULE = "flowsignals.lambdas.handlers"
BASE = LINK_BASE
RUN = "order-1234"
MINT = "POST /runs/{runId}/signals/{signalName}/links"
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
}


def call(
    route: str, parameters: dict[str, str], body: Any = None, context: Any = None
) -> dict[str, Any]:
    text = None if body is None else json.dumps(body)
    answer: dict[str, Any] = load_handler(route)(
        http_api_event(route, parameters, body=text), context or FakeLambdaContext()
    )
    return answer


def mint(signal: str = "approve", run: str = RUN, **body: Any) -> dict[str, str]:
    answer = call(MINT, {"runId": run, "signalName": signal}, body)
    assert answer["statusCode"] == 200, answer["body"]
    minted: dict[str, str] = json.loads(answer["body"])["links"]
    return minted


def token_of(url: str) -> str:
    assert url.startswith(BASE + "/approvals/")
    return url.rpartition("/")[2]


def page(method: str, url: str) -> dict[str, Any]:
    return call(f"{method} /approvals/{{token}}", {"token": token_of(url)})


def text_of(answer: dict[str, Any]) -> str:
    """The page's words, without markup."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", answer["body"])).split())


def register(step: str = "manager-approval", signal: str = "approve", run: str = RUN) -> None:
    answer = call(
        "PUT /runs/{runId}/waiters/{stepKey}",
        {"runId": run, "stepKey": step},
        {"signalName": signal, "timeoutSeconds": 3600},
    )
    assert answer["statusCode"] == 200, answer["body"]


def waiter(step: str = "manager-approval", run: str = RUN) -> dict[str, Any]:
    answer = call("GET /runs/{runId}/waiters/{stepKey}", {"runId": run, "stepKey": step})
    view: dict[str, Any] = json.loads(answer["body"])
    return view


# --- minting ------------------------------------------------------------------------------


def test_default_links_approve_and_reject_and_expire_in_three_days(links: Any) -> None:
    before = datetime.now(UTC)
    answer = call(MINT, {"runId": RUN, "signalName": "approve"})
    body = json.loads(answer["body"])
    assert set(body["links"]) == {"approve", "reject"}
    expires = datetime.fromisoformat(body["expiresAt"])
    # Whole seconds, counted from the request.
    assert timedelta(days=3, seconds=-1) <= expires - before <= timedelta(days=3, seconds=1)
    for url in body["links"].values():
        assert len(url.encode()) < 2048
        assert re.fullmatch(r"[A-Za-z0-9_.-]+", token_of(url)), "URL-safe, nothing to encode"


def test_a_token_stays_short_whatever_the_link_holds(links: Any) -> None:
    longest = "名" * 256
    actions = {
        f"a{i}": {"label": longest, "failure": {"error": "E" * 256, "cause": "c" * 5000}}
        for i in range(10)
    }
    urls = mint(longest, run=longest, approver=longest, actions=actions)
    assert len(urls) == 10
    assert max(len(token_of(url)) for url in urls.values()) < 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"expiresInSeconds": 0}, "expiresInSeconds"),
        ({"expiresInSeconds": 2_592_001}, "expiresInSeconds"),
        ({"expiresInSeconds": "60"}, "expiresInSeconds"),
        ({"approver": "a" * 257}, "approver"),
        ({"approver": "ana\nbob"}, "approver"),
        ({"actions": {}}, "actions"),
        ({"actions": {"no spaces": {}}}, "actions.no spaces.[key]"),
        ({"actions": {f"a{i}": {} for i in range(11)}}, "actions"),
        ({"actions": {"ok": {"payload": "x" * 4097}}}, "actions.ok.payload"),
        ({"actions": {"ok": {"payload": 1, "failure": {"error": "E"}}}}, "actions.ok"),
        ({"actions": {"ok": {"failure": {"cause": "no error"}}}}, "actions.ok.failure.error"),
        ({"approvers": "typo"}, "approvers"),
    ],
)
def test_a_bad_minting_request_is_400_and_mints_nothing(
    links: Any, body: dict[str, Any], field: str
) -> None:
    answer = call(MINT, {"runId": RUN, "signalName": "approve"}, body)
    assert answer["statusCode"] == 400
    problem = json.loads(answer["body"])
    assert problem["code"] == "InvalidRequest"
    assert problem["detail"].startswith(field + ":"), problem["detail"]
    assert links.scan(TableName=TABLE_NAME)["Items"] == []


def test_the_links_function_mints_for_a_state_machine_and_refuses_bad_events(links: Any) -> None:
    handler = load_handler("LinksFunction")
    answer = handler({"runId": RUN, "signalName": "approve"}, FakeLambdaContext())
    assert set(answer["links"]) == {"approve", "reject"}
    with pytest.raises(InvalidSignalRequest) as raised:
        handler(
            {"runId": RUN, "signalName": "approve", "expiresInSeconds": -1}, FakeLambdaContext()
        )
    assert type(raised.value).__name__ == "InvalidSignalRequest"
    assert "expiresInSeconds" in str(raised.value)


def test_the_approvals_function_answers_pages_only(links: Any) -> None:
    with pytest.raises(InvalidSignalRequest):
        load_handler("ApprovalsFunction")({"runId": RUN}, FakeLambdaContext())


# --- opening and clicking -----------------------------------------------------------------


def test_opening_shows_what_a_click_does_and_changes_nothing(links: Any) -> None:
    urls = mint(approver="ana@example.com")
    register()
    for _ in range(3):  # a mail scanner fetches every link, maybe more than once
        for url in urls.values():
            shown, head = page("GET", url), page("HEAD", url)
            assert shown["statusCode"] == head["statusCode"] == 200
            assert head["body"] == ""
            length = str(len(shown["body"].encode()))
            assert head["headers"] == shown["headers"] | {"Content-Length": length}
    assert waiter()["state"] == "Waiting"
    words = text_of(page("GET", urls["approve"]))
    for fact in ("Approve?", "manager-approval", RUN, "ana@example.com", "Link works until"):
        assert fact in words
    assert '<form method="post">' in page("GET", urls["approve"])["body"]


def test_a_click_delivers_once_and_a_second_click_is_a_replay(links: Any) -> None:
    urls = mint(approver="ana@example.com")
    register()
    first = page("POST", urls["approve"])
    assert first["statusCode"] == 200
    assert "Done: Approve" in text_of(first)
    delivered = waiter()
    assert delivered["payload"] == {"approved": True}
    assert delivered["deliveredBy"] == "ana@example.com"
    again = page("POST", urls["approve"])
    assert again["statusCode"] == 200
    assert "changed nothing" in text_of(again)
    assert waiter() == delivered
    # The other link, and a later look at either, say who decided what and when.
    for answer in (page("POST", urls["reject"]), page("GET", urls["reject"])):
        assert answer["statusCode"] == 409
        words = text_of(answer)
        assert "Already decided" in words and "Approve" in words and "ana@example.com" in words
    assert waiter() == delivered


@pytest.fixture(params=["memory", pytest.param("dynamodb-local", marks=pytest.mark.dynamodb_local)])
def approvals_on(request: pytest.FixtureRequest, clock: FakeClock) -> tuple[Any, ApprovalService]:
    """A store of each kind the pages' moto tests do not cover, and the approvals service
    over it."""
    store: Any = make_backend(request.param, request, clock).store
    signals = SignalService(store, Metrics(namespace="FlowSignalsTest"))
    return store, ApprovalService(signals, store, store, FixedLinkKeys(LinkKey(**KEY)), clock)


def test_a_page_names_who_will_answer_and_reopening_your_own_link_shows_done(
    approvals_on: tuple[Any, ApprovalService],
) -> None:
    """Before anyone decided, the page says whose answer a click records, never "decided
    by"; after ana approves, her approve link (opened or clicked again) shows done (200)
    and only the other link says it was already decided (409)."""
    (store, approvals), run = approvals_on, f"order-{uuid4()}"
    store.register_waiter(run, "manager-approval", "approve")
    minted = approvals.mint(run, "approve", MintLinksBody(approver="ana@example.com"), BASE)
    approve, reject = (token_of(minted["links"][action]) for action in ("approve", "reject"))

    def shown(approval: Approval) -> tuple[int, str]:
        status, html = approval_page(approval)
        return status, text_of({"body": html})

    for token in (approve, reject):
        status, words = shown(approvals.inspect(token))
        assert status == 200 and "Your answer is recorded as ana@example.com" in words
        assert "Decided" not in words and " By " not in words

    status, words = shown(approvals.decide(approve))
    assert status == 200 and "Done: Approve" in words

    for reopen in (approvals.inspect, approvals.decide):
        status, words = shown(reopen(approve))
        assert status == 200 and "Done: Approve" in words and "Already decided" not in words
        status, words = shown(reopen(reject))
        assert status == 409 and "Already decided" in words
        assert "Decided Approve" in words and "By ana@example.com" in words


def test_reject_delivers_the_rejected_failure_and_anonymous_links_record_link(links: Any) -> None:
    urls = mint()
    register()
    assert page("POST", urls["reject"])["statusCode"] == 200
    rejected = waiter()
    assert rejected["failure"] == {"error": "Rejected", "cause": None}
    assert rejected["payload"] is None and rejected["deliveredBy"] == "link"


def test_custom_actions_deliver_their_payload(links: Any) -> None:
    urls = mint(actions={"ship": {"label": "Ship it", "payload": {"carrier": "dhl"}}})
    register()
    assert "Ship it?" in text_of(page("GET", urls["ship"]))
    assert page("POST", urls["ship"])["statusCode"] == 200
    assert waiter()["payload"] == {"carrier": "dhl"}


def test_no_step_waiting_and_a_step_that_stopped_waiting(links: Any) -> None:
    urls = mint()
    early = page("POST", urls["approve"])
    assert early["statusCode"] == 404 and "Nothing to decide" in text_of(early)
    call(
        "PUT /runs/{runId}/waiters/{stepKey}",
        {"runId": RUN, "stepKey": "manager-approval"},
        {"signalName": "approve", "expiresAt": "2020-01-01T00:00:00Z"},
    )
    for method in ("GET", "POST"):
        late = page(method, urls["approve"])
        assert late["statusCode"] == 410 and "Too late" in text_of(late)
    assert waiter()["state"] == "Expired"


def sign(link_id: str, action: str, expires_at: datetime, key: dict[str, str] = KEY) -> str:
    token = LinkToken(link_id, action, expires_at).sign(key["keyId"], key["key"].encode())
    return f"{BASE}/approvals/{token}"


def test_forged_altered_and_unknown_tokens_are_refused_without_detail(links: Any) -> None:
    url = mint()["approve"]
    register()
    link_id = LinkToken.read(token_of(url), lambda _: KEY["key"].encode()).link_id
    later = datetime.now(UTC) + timedelta(days=1)
    body, signature = token_of(url).split(".")
    flipped = body[:-1] + ("A" if body[-1] != "A" else "B")
    refused = [
        sign(link_id, "approve", later, {"keyId": "test", "key": "other" * 10}),  # forged
        sign(link_id, "approve", later, {"keyId": "other", "key": KEY["key"]}),  # unknown key id
        sign(link_id, "approve", later) + "x",  # altered signature
        f"{BASE}/approvals/{flipped}.{signature}",  # altered body
        sign("0" * 32, "approve", later),  # signed, but no such link
        sign(link_id, "ship", later),  # signed, but no such action
        f"{BASE}/approvals/not-a-token",
        f"{BASE}/approvals/{'a' * 3000}",
    ]
    for forged in refused:
        for method in ("GET", "HEAD", "POST"):
            answer = page(method, forged)
            assert answer["statusCode"] == 403, (forged, answer["statusCode"])
            assert method == "HEAD" or "not valid" in text_of(answer)
    assert waiter()["state"] == "Waiting"


def test_an_expired_link_says_so_and_changes_nothing(links: Any) -> None:
    url = mint()["approve"]
    register()
    link_id = LinkToken.read(token_of(url), lambda _: KEY["key"].encode()).link_id
    expired = sign(link_id, "approve", datetime(2026, 1, 2, 3, 4, tzinfo=UTC))
    for method in ("GET", "POST"):
        answer = page(method, expired)
        assert answer["statusCode"] == 410
        assert "expired" in text_of(answer) and "2026-01-02 03:04 UTC" in text_of(answer)
    assert waiter()["state"] == "Waiting"


def test_every_page_is_uncached_unindexed_unframed_and_scriptless(links: Any) -> None:
    urls = mint()
    register()
    answers = [
        page("GET", urls["approve"]),
        page("POST", urls["approve"]),
        call("GET /approvals/{token}", {"token": "x"}),
    ]
    for answer in answers:
        headers = answer["headers"]
        assert headers["Content-Type"] == "text/html; charset=utf-8"
        assert PAGE_HEADERS.items() <= headers.items()
        policy = dict(
            part.strip().split(" ", 1) for part in headers["Content-Security-Policy"].split(";")
        )
        assert policy["default-src"] == "'none'" and "script-src" not in policy
        assert policy["frame-ancestors"] == "'none'" and policy["form-action"] == "'self'"
        assert "<script" not in answer["body"].lower()


@pytest.fixture
def debugging_everything(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The functions as an operator debugging them might run them: Powertools told to log
    every event and to debug the resolver (both read when the functions are built)."""
    modules = [importlib.import_module(name) for name in (ROUTES_MODULE, HANDLERS_MODULE)]
    with monkeypatch.context() as debugging:
        for setting in ("POWERTOOLS_LOGGER_LOG_EVENT", "POWERTOOLS_DEV"):
            debugging.setenv(setting, "true")
        for module in modules:
            importlib.reload(module)
        yield
    for module in modules:
        importlib.reload(module)


def test_no_log_holds_a_link_or_task_token_whatever_the_settings(
    links: Any,
    debugging_everything: None,
    logs: io.StringIO,
    capsys: pytest.CaptureFixture[str],
) -> None:
    urls = mint()
    register()
    for method in ("GET", "HEAD", "POST", "POST"):
        page(method, urls["approve"])
    page("GET", urls["reject"])
    page("GET", urls["reject"] + "x")  # altered: refused
    task_token = "task-token-" + "t" * 40
    event = {"runId": RUN, "stepKey": "s", "signalName": "go", "taskToken": task_token}
    load_handler("RegisterFunction")(event, FakeLambdaContext())
    printed = capsys.readouterr()
    everything = logs.getvalue() + printed.out + printed.err
    for secret in (*map(token_of, urls.values()), task_token):
        assert secret not in everything


def test_markup_in_names_stays_inert(links: Any) -> None:
    evil = '<img src=x onerror="alert(1)">&amp;'
    run = "<script>alert('run')</script>"
    urls = mint(evil, run=run, approver=evil, actions={"go": {"label": evil}})
    register(step=evil, signal=evil, run=run)
    for answer in (page("GET", urls["go"]), page("POST", urls["go"]), page("GET", urls["go"])):
        body = answer["body"]
        assert "<img" not in body and "<script" not in body
        assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;amp;" in body
        assert evil in text_of(answer)


# --- the token and the link store ---------------------------------------------------------


def test_a_token_reads_back_only_under_its_key_and_in_its_one_spelling() -> None:
    expires = datetime(2030, 1, 1, tzinfo=UTC)
    token = LinkToken("a" * 32, "approve", expires).sign("k1", b"s" * 32)
    assert LinkToken.read(token, {"k1": b"s" * 32}.get) == LinkToken("a" * 32, "approve", expires)
    for wrong in (token + "=", token.replace(".", ".."), token[:-1], " " + token, token.upper()):
        with pytest.raises(BadLinkToken):
            LinkToken.read(wrong, {"k1": b"s" * 32}.get)
    with pytest.raises(BadLinkToken):
        LinkToken.read(token, {"k2": b"s" * 32}.get)


def test_every_backend_keeps_links_by_id(store: Any, clock: FakeClock) -> None:
    """Every backend is also an ``ApprovalLinkStore``."""
    now = clock()
    link = ApprovalLink(
        link_id="b" * 32,
        run_id="run",
        signal_name="approve",
        approver="ana",
        created_at=now,
        expires_at=now + timedelta(days=1),
        actions={"reject": LinkAction(label="No", failure={"error": "Rejected", "cause": "c"})},
    )
    assert store.get_link(link.link_id) is None
    store.save_link(link)
    assert store.get_link(link.link_id) == link
    assert store.list_waiters("run") == [], "a link is no waiter of any run"

    first = LinkDecision(action="reject", at=now, by="ana", step_key="s")
    later = LinkDecision(action="approve", at=now + timedelta(seconds=1), by="ana", step_key="t")
    assert store.record_decision(link.link_id, first) == first
    assert store.record_decision(link.link_id, later) == first  # the first decision stays
    assert store.get_link(link.link_id) == link.model_copy(update={"decision": first})


def test_a_rotated_secret_signs_with_the_new_key_and_still_reads_the_old(
    fresh_runtime: Any,
) -> None:
    """The stack's secret: AWSCURRENT signs, AWSPREVIOUS still verifies, older keys do not."""
    secrets = boto3.client("secretsmanager")
    arn = secrets.create_secret(Name="links", SecretString=json.dumps(KEY))["ARN"]
    keys = SecretsManagerLinkKeys(arn, client=secrets)
    assert keys.signing_key().keyId == "test"
    assert keys.key_for("test") == KEY["key"].encode()
    assert keys.key_for("k2") is None  # never rotated: no previous version

    rotated = {"keyId": "k2", "key": "n" * 40}
    secrets.put_secret_value(SecretId=arn, SecretString=json.dumps(rotated))
    keys = SecretsManagerLinkKeys(arn, client=secrets)  # a new process (or 5 minutes later)
    assert keys.signing_key().keyId == "k2"
    assert keys.key_for("k2") == b"n" * 40
    assert keys.key_for("test") == KEY["key"].encode()  # links minted before still work

    secrets.put_secret_value(
        SecretId=arn, SecretString=json.dumps({"keyId": "k3", "key": "m" * 40})
    )
    keys = SecretsManagerLinkKeys(arn, client=secrets)
    assert keys.key_for("test") is None  # two rotations ago


def test_a_malformed_secret_is_a_configuration_error_that_never_shows_the_key(
    fresh_runtime: Any,
) -> None:
    secrets = boto3.client("secretsmanager")
    secret = json.dumps({"keyId": "has space", "key": "short-and-secret"})
    arn = secrets.create_secret(Name="bad", SecretString=secret)["ARN"]
    with pytest.raises(FlowSignalError) as raised:
        SecretsManagerLinkKeys(arn, client=secrets).signing_key()
    assert "misconfigured" in str(raised.value) and "short-and-secret" not in str(raised.value)


def test_the_link_functions_call_dynamodb_only_as_their_grants_allow(
    links: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What each function's policy in template.yaml allows is what it calls (moto, recorded)."""
    clients: list[Any] = []
    make_client = dynamodb_backend.default_client
    monkeypatch.setattr(
        dynamodb_backend, "default_client", lambda: clients.append(make_client()) or clients[-1]
    )
    reset_runtime()
    runtime.store()
    (client,) = clients
    allowed = {
        name: {action.removeprefix("dynamodb:") for action in grants(function)}
        for name, function in functions().items()
    }
    with record_requests(client) as minting:
        urls = mint()
    register()
    with record_requests(client) as pages:
        for method in ("GET", "HEAD", "POST", "POST", "GET"):
            for url in urls.values():
                page(method, url)
    assert {request.operation for request in minting} == {"PutItem"}
    assert {request.operation for request in minting} <= allowed["LinksFunction"]
    assert {request.operation for request in pages} == allowed["ApprovalsFunction"] - {
        "secretsmanager:GetSecretValue"
    }
