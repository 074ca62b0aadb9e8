"""Approval links and who may decide (docs/contract.md, Who may decide): a link set decides once
for its whole life, a link's approver must be among a step's deciders, and a quorum gathers
approvals from several links — as the functions answer API Gateway's events (on moto)."""

from __future__ import annotations

import json
from typing import Any

from test_approval_links import call, mint, page, text_of, waiter

from conftest import TABLE_NAME
from flowsignals.lambdas import runtime

RUN = "payment-77"
STEP = "payment"


def register(**body: Any) -> None:
    answer = call(
        "PUT /runs/{runId}/waiters/{stepKey}",
        {"runId": RUN, "stepKey": STEP},
        {"signalName": "approve", **body},
    )
    assert answer["statusCode"] == 200, answer["body"]


def remove() -> None:
    call("DELETE /runs/{runId}/waiters/{stepKey}", {"runId": RUN, "stepKey": STEP})


def test_a_used_link_set_never_decides_again_after_its_step_is_removed(links: Any) -> None:
    register()
    urls = mint(run=RUN, approver="ana@example.com")
    assert page("POST", urls["approve"])["statusCode"] == 200

    # The README's own pattern: the step's row goes, and a later round parks the same step.
    remove()
    register()

    reject = page("POST", urls["reject"])
    assert reject["statusCode"] == 409
    assert "Approve" in text_of(reject) and "ana@example.com" in text_of(reject)
    again = page("POST", urls["approve"])
    assert again["statusCode"] == 200 and "recorded earlier" in text_of(again)
    for method in ("GET", "HEAD"):
        assert page(method, urls["approve"])["statusCode"] == 200
        assert page(method, urls["reject"])["statusCode"] == 409
    assert waiter(STEP, RUN)["state"] == "Waiting"  # the new round is nobody's yet


def test_a_link_whose_approver_is_no_decider_says_so_and_decides_nothing(links: Any) -> None:
    register(deciders=["email:cfo@example.com"])
    for approver in ({"approver": "intern@example.com"}, {"approver": "The CFO"}, {}):
        urls = mint(run=RUN, **approver)
        for method in ("GET", "POST"):
            answer = page(method, urls["approve"])
            assert answer["statusCode"] == 403, (approver, method)
            assert "Not yours to decide" in text_of(answer)
    assert waiter(STEP, RUN)["state"] == "Waiting"

    cfo = mint(run=RUN, approver="CFO@example.com")  # the address, in any case
    assert page("POST", cfo["approve"])["statusCode"] == 200
    assert waiter(STEP, RUN)["deliveredBy"] == "CFO@example.com"


def test_two_people_approve_one_payment_from_two_links(links: Any) -> None:
    register(deciders=["email:ana@example.com", "email:bob@example.com"], quorum=2)
    ana = mint(run=RUN, approver="ana@example.com")
    bob = mint(run=RUN, approver="bob@example.com")

    opened = page("GET", ana["approve"])
    assert opened["statusCode"] == 200 and "0 of 2 approvals" in text_of(opened)
    assert "Decided by" not in text_of(opened)  # nobody has decided yet

    first = page("POST", ana["approve"])
    assert first["statusCode"] == 202 and "1 of 2 approvals" in text_of(first)
    assert page("GET", ana["approve"])["statusCode"] == 202  # reopened: still 1 of 2
    changed_mind = page("POST", ana["reject"])
    assert changed_mind["statusCode"] == 409  # her set decided: approve
    assert page("GET", bob["approve"])["statusCode"] == 200
    assert "1 of 2 approvals" in text_of(page("GET", bob["approve"]))

    second = page("POST", bob["approve"])
    assert second["statusCode"] == 200 and "Done" in text_of(second)
    done = waiter(STEP, RUN)
    assert done["state"] == "Delivered" and done["payload"] == {"approved": True}
    assert [a["by"] for a in done["approvals"]] == ["ana@example.com", "bob@example.com"]
    assert page("GET", ana["approve"])["statusCode"] == 200  # done, for her too


def test_a_quorum_refuses_a_link_without_an_address(links: Any) -> None:
    register(quorum=2)
    urls = mint(run=RUN, approver="Ana")
    assert page("POST", urls["approve"])["statusCode"] == 403
    assert not runtime.store().get_waiter(RUN, STEP).approvals  # type: ignore[union-attr]


def test_the_decision_is_kept_on_the_link_row(links: Any) -> None:
    register()
    urls = mint(run=RUN, approver="ana@example.com")
    page("POST", urls["reject"])

    (row,) = [item for item in links.scan(TableName=TABLE_NAME)["Items"] if "LinkJson" in item]
    link = runtime.store().get_link(json.loads(row["LinkJson"]["S"])["link_id"])
    assert link is not None and link.decision is not None
    assert (link.decision.action, link.decision.by, link.decision.step_key) == (
        "reject",
        "ana@example.com",
        STEP,
    )
