"""A person opens an approval link in real Chromium, reads the page, clicks, and reads the
outcome; a mail scanner's fetches decide nothing; markup in names stays text; the page's own
Content-Security-Policy lets its style through and nothing else."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote
from uuid import uuid4

import pytest
from playwright.sync_api import ConsoleMessage, Dialog, Page

SCREENSHOTS = Path(__file__).resolve().parents[2] / ".cache" / "screenshots"
GREEN = "rgb(21, 128, 61)"  # the approve button's colour in the page's own style


@pytest.fixture(scope="module")
def api(local_server: Callable[..., str]) -> str:
    return local_server()


def request(url: str, method: str = "GET", body: Any = None) -> tuple[int, Any]:
    """A call from Python, outside the browser: what the server holds."""
    data = None if body is None else json.dumps(body).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data, method=method)) as answer:
            text = answer.read().decode()
            return answer.status, json.loads(text) if text.startswith("{") else text
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def approval(api: str, step: str = "manager-approval", **mint: Any) -> tuple[str, dict[str, str]]:
    """A run whose step waits for "approve", and its links; returns (waiter URL, links)."""
    run = quote(f"order-{uuid4()}", safe="")
    waiter = f"{api}/runs/{run}/waiters/{quote(step, safe='')}"
    assert request(waiter, "PUT", {"signalName": "approve", "timeoutSeconds": 3600})[0] == 200
    status, minted = request(f"{api}/runs/{run}/signals/approve/links", "POST", mint)
    assert status == 200, minted
    return waiter, minted["links"]


def watch(page: Page) -> list[str]:
    """What the page should never do: open a dialog (a script ran), or break its own policy."""
    trouble: list[str] = []

    def on_dialog(dialog: Dialog) -> None:
        trouble.append(f"dialog: {dialog.message}")
        dialog.dismiss()

    def on_console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            trouble.append(f"console: {message.text}")

    page.on("dialog", on_dialog)
    page.on("console", on_console)
    return trouble


def test_a_person_opens_the_link_reads_it_clicks_and_sees_it_done(page: Page, api: str) -> None:
    waiter, links = approval(api, approver="ana@example.com")
    trouble = watch(page)
    page.set_viewport_size({"width": 800, "height": 560})  # as a mail client opens it

    opened = page.goto(links["approve"])
    assert opened is not None and opened.status == 200
    assert page.title() == "Approve? · flowsignals"
    main = page.locator("main")
    for fact in ("manager-approval", "ana@example.com", "Link works until", "changed nothing"):
        assert fact in main.inner_text()
    button = page.get_by_role("button", name="Approve")
    # The style applies under the page's Content-Security-Policy (allowed by its hash).
    assert button.evaluate("b => getComputedStyle(b).backgroundColor") == GREEN
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOTS / "approval-page.png"
    page.screenshot(path=shot, full_page=True)
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 5_000
    assert request(waiter)[1]["state"] == "Waiting", "opening the page changed nothing"

    with page.expect_navigation():
        button.click()
    assert page.locator("h1").inner_text() == "Done: Approve"
    assert "ana@example.com" in main.inner_text()
    stored = request(waiter)[1]
    assert stored["state"] == "Delivered" and stored["payload"] == {"approved": True}
    assert stored["deliveredBy"] == "ana@example.com"

    # Later, the same link says it is done, the other one that it is decided; no button.
    for url, status, heading in (
        (links["approve"], 200, "Done: Approve"),
        (links["reject"], 409, "Already decided"),
    ):
        again = page.goto(url)
        assert again is not None and again.status == status
        assert page.locator("h1").inner_text() == heading
        assert "ana@example.com" in main.inner_text()
        assert page.get_by_role("button").count() == 0
    assert trouble == []


def test_a_mail_scanner_fetching_every_link_decides_nothing(page: Page, api: str) -> None:
    waiter, links = approval(api)
    for url in links.values():
        for _ in range(2):
            assert page.request.head(url).status == 200
            assert page.request.get(url).status == 200
            assert page.goto(url) is not None  # a scanner that renders pages, too
    assert request(waiter)[1]["state"] == "Waiting"

    # The person rejects; a scanner's second pass after the click changes nothing either.
    page.goto(links["reject"])
    with page.expect_navigation():
        page.get_by_role("button", name="Reject").click()
    assert page.locator("h1").inner_text() == "Done: Reject"
    for action, url in links.items():
        status = 200 if action == "reject" else 409  # the one chosen is done, the other decided
        assert page.request.get(url).status == status
        assert page.request.head(url).status == status
    stored = request(waiter)[1]
    assert stored["failure"] == {"error": "Rejected", "cause": None}


def test_a_forged_or_altered_link_is_refused(page: Page, api: str) -> None:
    waiter, links = approval(api)
    good = links["approve"]
    signature = good.rpartition(".")[2]
    altered = good.replace(signature, signature[::-1])
    for url in (altered, good.rpartition("/")[0] + "/forged", good + "x"):
        refused = page.goto(url)
        assert refused is not None and refused.status == 403
        assert page.locator("h1").inner_text() == "This link is not valid"
        assert page.get_by_role("button").count() == 0
    assert request(waiter)[1]["state"] == "Waiting"


def test_markup_in_an_approver_or_a_step_key_stays_text(page: Page, api: str) -> None:
    evil = "<img src=x onerror=alert(1)><script>alert(2)</script>"
    waiter, links = approval(api, step=evil, approver=evil, actions={"go": {"label": evil}})
    trouble = watch(page)
    page.goto(links["go"])
    main = page.locator("main")
    assert main.inner_text().count(evil) >= 3  # the step, the approver, the action
    assert page.locator("main img, main script").count() == 0
    with page.expect_navigation():
        page.get_by_role("button").click()
    assert evil in main.inner_text()
    assert [t for t in trouble if t.startswith("dialog")] == []
    assert request(waiter)[1]["deliveredBy"] == evil


def test_two_people_approve_one_payment_from_two_links(page: Page, api: str) -> None:
    """The README's four-eyes walk-through on make run's server: Ana's click leaves the step
    at "1 of 2 approvals"; Bob's completes it."""
    run = quote(f"payment-{uuid4()}", safe="")
    waiter = f"{api}/runs/{run}/waiters/pay-invoice"
    deciders = ["email:ana@example.com", "email:bob@example.com"]
    body = {"signalName": "approve", "deciders": deciders, "quorum": 2}
    assert request(waiter, "PUT", body)[0] == 200
    links = {}
    for person in ("ana", "bob"):
        status, minted = request(
            f"{api}/runs/{run}/signals/approve/links", "POST", {"approver": f"{person}@example.com"}
        )
        assert status == 200, minted
        links[person] = minted["links"]["approve"]
    trouble = watch(page)

    page.goto(links["ana"])
    assert "0 of 2 approvals" in page.locator("main").inner_text()
    with page.expect_navigation():
        page.get_by_role("button", name="Approve").click()
    assert page.title() == "Approved: 1 of 2 approvals · flowsignals"
    assert request(waiter)[1]["state"] == "Waiting"

    page.goto(links["bob"])
    assert "1 of 2 approvals" in page.locator("main").inner_text()
    with page.expect_navigation():
        page.get_by_role("button", name="Approve").click()
    assert page.title() == "Done: Approve · flowsignals"

    status, stored = request(waiter)
    assert status == 200 and stored["state"] == "Delivered"
    assert [a["by"] for a in stored["approvals"]] == ["ana@example.com", "bob@example.com"]
    assert trouble == []
