"""A page served from another origin calls `make run`'s API from real Chromium: the browser,
not a test's reading of headers, decides what CORS allows."""

from __future__ import annotations

import contextlib
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from uuid import uuid4

import pytest
from playwright.sync_api import Page

PAGE = b"<!doctype html><title>flowsignals dashboard</title><p>approvals</p>"

# fetch() from the page: the status and JSON body of each call, or the error the browser
# raised instead of handing over the answer.
CALL = """
async ({url, method, body, headers}) => {
    try {
        const answer = await fetch(url, {method, body, headers});
        return {status: answer.status, body: await answer.json()};
    } catch (error) {
        return {error: `${error.name}: ${error.message}`};
    }
}
"""


class _PageHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the page's own requests are not what the tests look at


@contextlib.contextmanager
def serving_page() -> Iterator[str]:
    """An origin of its own (a port is part of an origin) serving the page; yields it."""
    with ThreadingHTTPServer(("127.0.0.1", 0), _PageHandler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()


@pytest.fixture(scope="module")
def dashboard_origin() -> Iterator[str]:
    with serving_page() as origin:
        yield origin


@pytest.fixture(scope="module")
def other_origin() -> Iterator[str]:
    with serving_page() as origin:
        yield origin


@pytest.fixture(scope="module")
def api(local_server: Callable[..., str], dashboard_origin: str) -> str:
    return local_server(CORS_ALLOW_ORIGINS=dashboard_origin)


def call(page: Page, url: str, method: str = "GET", body: str | None = None, **headers: str) -> Any:
    return page.evaluate(CALL, {"url": url, "method": method, "body": body, "headers": headers})


def read(url: str) -> tuple[int, Any]:
    """A GET from Python, outside any browser: what the server holds."""
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_a_page_from_an_allowed_origin_registers_delivers_and_reads(
    page: Page, api: str, dashboard_origin: str
) -> None:
    page.goto(dashboard_origin)
    waiter = f"{api}/runs/{uuid4()}/waiters/manager-approval"
    # A JSON PUT and a POST with Idempotency-Key are not "simple": each is preflighted first.
    registration = json.dumps({"signalName": "approve", "timeoutSeconds": 3600})
    registered = call(page, waiter, "PUT", registration, **{"Content-Type": "application/json"})
    assert registered["status"] == 200, registered
    assert registered["body"]["state"] == "Waiting"

    signal = waiter.replace("/waiters/manager-approval", "/signals/approve")
    click = '{"approved": true}'
    delivered = call(page, signal, "POST", click, **{"Idempotency-Key": "click-1"})
    assert delivered["status"] == 200, delivered
    assert delivered["body"]["delivered"] is True and delivered["body"]["replayed"] is False
    again = call(page, signal, "POST", click, **{"Idempotency-Key": "click-1"})
    assert again["body"]["replayed"] is True

    shown = call(page, waiter)
    assert shown["status"] == 200
    assert shown["body"]["state"] == "Delivered" and shown["body"]["payload"] == {"approved": True}


def test_a_page_from_another_origin_gets_no_answer_and_its_preflighted_calls_never_run(
    page: Page, api: str, other_origin: str
) -> None:
    page.goto(other_origin)
    run = f"{api}/runs/{uuid4()}"
    registration = json.dumps({"signalName": "ship"})
    refused = call(
        page, f"{run}/waiters/shipping", "PUT", registration, **{"Content-Type": "application/json"}
    )
    assert refused["error"].startswith("TypeError"), refused
    assert read(f"{run}/waiters/shipping")[0] == 404  # the preflight failed: no PUT was sent

    # A "simple" request (a POST of text/plain) is sent without a preflight: it runs on the
    # server, only its answer is kept from the page. CORS guards reading, not calling: the
    # deployed API's IAM or JWT authorizer is what refuses strangers.
    buffered = call(page, f"{run}/signals/ship?bufferSeconds=60", "POST", "{}")
    assert buffered["error"].startswith("TypeError"), buffered
    status, signals = read(f"{run}/signals")
    assert status == 200 and [s["signalName"] for s in signals["signals"]] == ["ship"]
