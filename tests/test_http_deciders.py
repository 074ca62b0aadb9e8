"""Who may decide, over HTTP and direct invocation (on moto): deciders and quorums registered
with a waiter, identities taken from the request context only (IAM, and JWT claims exactly as
API Gateway hands them over), 403 NotAllowed, 202 for a pending approval."""

from __future__ import annotations

import json
from typing import Any
from uuid import uuid4

import pytest

from flowsignals.lambdas import runtime
from flowsignals.lambdas.settings import settings
from flowsignals.testing import FakeLambdaContext, http_api_event
from template_yaml import load_handler

REGISTER = "PUT /runs/{runId}/waiters/{stepKey}"
GET = "GET /runs/{runId}/waiters/{stepKey}"
DELIVER = "POST /runs/{runId}/signals/{signalName}"
FAIL = "POST /runs/{runId}/signals/{signalName}/failure"
ACCOUNT = "123456789012"
ANA_ARN = f"arn:aws:iam::{ACCOUNT}:user/ana"
CFO_ROLE = f"arn:aws:iam::{ACCOUNT}:role/finance/CFO"
CFO_SESSION = f"arn:aws:sts::{ACCOUNT}:assumed-role/CFO/carla"


def iam(arn: str) -> dict[str, Any]:
    return {"iam": {"userArn": arn, "accountId": ACCOUNT}}


def jwt(**claims: str) -> dict[str, Any]:
    return {"jwt": {"claims": claims, "scopes": None}}


def http(
    route: str, parameters: dict[str, str], body: Any = None, authorizer: Any = None, **kw: Any
) -> tuple[int, Any]:
    if body is not None and not isinstance(body, str):
        body = json.dumps(body)
    event = http_api_event(route, parameters, body=body, **kw)
    event["requestContext"]["authorizer"] = authorizer or iam(ANA_ARN)
    answer = load_handler(route)(event, FakeLambdaContext())
    return answer["statusCode"], json.loads(answer["body"]) if answer.get("body") else None


@pytest.fixture
def run(fresh_runtime: Any) -> str:
    return f"payment-{uuid4().hex[:8]}"


def register(run: str, step: str = "pay", **body: Any) -> tuple[int, Any]:
    return http(REGISTER, {"runId": run, "stepKey": step}, {"signalName": "approve", **body})


def deliver(run: str, authorizer: Any, body: Any = None, **kw: Any) -> tuple[int, Any]:
    return http(DELIVER, {"runId": run, "signalName": "approve"}, body or {}, authorizer, **kw)


def delivered(run: str, step: str = "pay") -> bool:
    waiter = runtime.store().get_waiter(run, step)
    return waiter is not None and waiter.is_delivered


def test_a_waiter_registered_with_deciders_shows_them(run: str) -> None:
    status, waiter = register(run, deciders=["email:Ana@Example.com", f"iam:{CFO_ROLE}"], quorum=2)
    assert status == 200
    assert waiter["deciders"] == ["email:ana@example.com", f"iam:arn:aws:iam::{ACCOUNT}:role/CFO"]
    assert (waiter["quorum"], waiter["approvals"]) == (2, [])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"deciders": ["ana@example.com"]}, "deciders"),
        ({"deciders": "email:ana@example.com"}, "deciders"),
        ({"deciders": ["email:a@example.com"], "quorum": 2}, "quorum"),
        ({"quorum": 0}, "quorum"),
        ({"quorum": "2"}, "quorum"),
    ],
)
def test_bad_deciders_are_400_naming_the_field_and_register_nothing(
    run: str, body: dict[str, Any], field: str
) -> None:
    status, problem = register(run, **body)
    assert status == 400 and problem["detail"].startswith(field), problem
    assert runtime.store().get_waiter(run, "pay") is None


def test_an_iam_caller_not_among_the_deciders_is_403_and_nothing_is_written(run: str) -> None:
    register(run, deciders=[f"iam:{CFO_ROLE}"])
    status, problem = deliver(run, iam(ANA_ARN), {"approved": True})
    assert status == 403 and problem["code"] == "NotAllowed"
    assert problem["type"] == "about:blank" and problem["status"] == 403
    assert not delivered(run)

    status, answer = deliver(run, iam(CFO_SESSION), {"approved": True})
    assert status == 200 and answer["stepKey"] == "pay"
    assert runtime.store().get_waiter(run, "pay").delivered_by == CFO_SESSION  # type: ignore[union-attr]


def test_identities_come_from_the_request_context_never_from_the_request(run: str) -> None:
    register(run, deciders=["email:cfo@example.com"])
    forged = {"X-Amz-User": "cfo@example.com", "X-Caller-Identities": "email:cfo@example.com"}
    status, _ = deliver(
        run, iam(ANA_ARN), {"callerIdentities": ["email:cfo@example.com"]}, headers=forged
    )
    assert status == 403
    status, problem = http(
        FAIL,
        {"runId": run, "signalName": "approve"},
        {"error": "Rejected", "callerIdentities": ["email:cfo@example.com"]},
    )
    assert status == 400 and "callerIdentities" in problem["detail"]
    assert not delivered(run)


@pytest.mark.parametrize(
    ("claims", "allowed"),
    [
        ({"sub": "u-1", "email": "cfo@example.com", "email_verified": "true"}, True),
        ({"sub": "u-1", "email": "CFO@example.com", "email_verified": "true"}, True),
        ({"sub": "u-1", "email": "cfo@example.com"}, False),
        ({"sub": "u-1", "email": "cfo@example.com", "email_verified": "false"}, False),
        ({"sub": "u-1", "cognito:groups": "[finance admins]"}, True),
        ({"sub": "u-1", "cognito:groups": "[sales]"}, False),
        ({"sub": "u-1", "cognito:groups": "finance"}, True),
        ({"sub": "ceo-sub"}, True),
        ({"sub": "u-1", "username": "ceo-sub"}, False),
    ],
)
def test_jwt_claims_as_api_gateway_hands_them_over(
    run: str, claims: dict[str, str], allowed: bool
) -> None:
    register(run, deciders=["email:cfo@example.com", "group:finance", "sub:ceo-sub"])
    status, _ = deliver(run, jwt(**claims))
    assert (status == 200) is allowed and (status == 403) is not allowed
    assert delivered(run) is allowed


def test_the_groups_claim_is_a_setting(run: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWT_GROUPS_CLAIM", "groups")
    settings.cache_clear()
    register(run, deciders=["group:finance"])
    assert deliver(run, jwt(sub="u-1", **{"cognito:groups": "[finance]"}))[0] == 403
    assert deliver(run, jwt(sub="u-1", groups="[finance]"))[0] == 200


def test_four_eyes_over_http(run: str) -> None:
    register(run, deciders=["email:ana@example.com", "email:bob@example.com"], quorum=2)
    ana = jwt(sub="a", email="ana@example.com", email_verified="true")
    bob = jwt(sub="b", email="bob@example.com", email_verified="true")

    status, answer = deliver(run, ana, {"amount": 1200})
    assert (status, answer) == (
        202,
        {"delivered": False, "stepKey": "pay", "approvals": 1, "quorum": 2, "replayed": False},
    )
    status, again = deliver(run, ana, {"amount": 1})
    assert status == 202 and again["replayed"] is True and again["approvals"] == 1
    _, waiter = http(GET, {"runId": run, "stepKey": "pay"})
    assert waiter["state"] == "Waiting"
    assert [(a["by"], a["payload"]) for a in waiter["approvals"]] == [
        ("ana@example.com", {"amount": 1200})
    ]

    status, done = deliver(run, bob, {"amount": 1200})
    assert status == 200 and done["delivered"] is True
    _, waiter = http(GET, {"runId": run, "stepKey": "pay"})
    assert waiter["state"] == "Delivered" and waiter["deliveredBy"] == "bob@example.com"
    assert [a["by"] for a in waiter["approvals"]] == ["ana@example.com", "bob@example.com"]


def test_direct_invocation_takes_caller_identities_and_answers_pending(run: str) -> None:
    deliver_fn = load_handler("DeliverFunction")
    load_handler("RegisterFunction")(
        {
            "runId": run,
            "stepKey": "pay",
            "signalName": "approve",
            "deciders": ["sub:a", "sub:b"],
            "quorum": 2,
        },
        FakeLambdaContext(),
    )
    event = {"runId": run, "signalName": "approve", "callerIdentities": ["sub:a"]}
    answer = deliver_fn(event, FakeLambdaContext())
    assert answer == {
        "status": "Pending",
        "stepKey": "pay",
        "deliveredAt": None,
        "expiresAt": None,
        "replayed": False,
        "approvals": 1,
        "quorum": 2,
    }
    with pytest.raises(Exception) as raised:  # noqa: PT011 - the type's name is the contract
        deliver_fn({**event, "callerIdentities": ["sub:z"]}, FakeLambdaContext())
    assert type(raised.value).__name__ == "NotAllowedToDecide"
    with pytest.raises(Exception) as invalid:  # noqa: PT011
        deliver_fn({**event, "callerIdentities": ["nobody"]}, FakeLambdaContext())
    assert type(invalid.value).__name__ == "InvalidSignalRequest"
    assert "callerIdentities" in str(invalid.value)
