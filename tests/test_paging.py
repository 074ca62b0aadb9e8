"""Pages of a run's waiters over HTTP and direct invocation: oldest first across pages, a
``nextToken`` that is opaque and refused when altered or used on another run, and every answer
under 5 MB serialised as the Lambda response, whatever the payloads."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode
from uuid import uuid4

import pytest

from flowsignals import InMemoryFlowSignalStore
from flowsignals.lambdas import runtime
from flowsignals.lambdas.service import SignalService
from flowsignals.testing import FakeLambdaContext, http_api_event
from template_yaml import load_handler

LIST = "GET /runs/{runId}/waiters"
FIVE_MB = 5_000_000


def http_page(run: str, **query: Any) -> tuple[dict[str, Any], int]:
    """One page over HTTP, and the size of the whole Lambda response as Lambda sends it."""
    event = http_api_event(LIST, {"runId": run}, raw_query_string=urlencode(query))
    response = load_handler(LIST)(event, FakeLambdaContext())
    assert response["statusCode"] == 200, response["body"]
    return json.loads(response["body"]), len(json.dumps(response))


def direct_page(run: str, **event: Any) -> tuple[dict[str, Any], int]:
    page = load_handler("ListFunction")({"runId": run, **event}, FakeLambdaContext())
    return page, len(json.dumps(page))


PAGES = [http_page, direct_page]


def all_pages(page: Any, run: str, **query: Any) -> list[tuple[dict[str, Any], int]]:
    pages = [page(run, **query)]
    while pages[-1][0]["nextToken"] is not None:
        pages.append(page(run, **query, nextToken=pages[-1][0]["nextToken"]))
        assert len(pages) < 100
    return pages


@pytest.mark.parametrize("page", PAGES, ids=["http", "direct"])
def test_pages_follow_each_other_oldest_first(fresh_runtime: Any, page: Any) -> None:
    run = str(uuid4())
    store = runtime.store()
    keys = [f"step-{n:02}" for n in range(7)]
    for key in reversed(keys):  # registered newest key first: age, not key order, rules
        store.register_waiter(run, key, "go")
        time.sleep(0.002)  # a distinct createdAt (milliseconds) each

    pages = all_pages(page, run, limit=3)

    assert [len(p["waiters"]) for p, _ in pages] == [3, 3, 1]
    listed = [w["stepKey"] for p, _ in pages for w in p["waiters"]]
    assert listed == list(reversed(keys))
    everything, _ = page(run)
    assert [w["stepKey"] for w in everything["waiters"]] == listed
    assert everything["nextToken"] is None


def test_the_default_page_is_fifty_and_the_limit_is_checked(fresh_runtime: Any) -> None:
    run = str(uuid4())
    for n in range(51):
        runtime.store().register_waiter(run, f"s{n}", "go")
    first, _ = http_page(run)
    assert len(first["waiters"]) == 50 and first["nextToken"]
    for bad in ("0", "101", "-1", "1.5", "ten", ""):
        event = http_api_event(LIST, {"runId": run}, raw_query_string=f"limit={bad}")
        answer = load_handler(LIST)(event, FakeLambdaContext())
        assert answer["statusCode"] == 400, bad
        assert json.loads(answer["body"])["detail"].startswith("limit: ")


def test_an_altered_or_foreign_token_is_refused(fresh_runtime: Any) -> None:
    run, other = str(uuid4()), "other-run"
    for n in range(3):
        runtime.store().register_waiter(run, f"step-number-{n}", "go")
        runtime.store().register_waiter(other, f"step-number-{n}", "go")
    token = http_page(run, limit=1)[0]["nextToken"]
    assert token and "step-number" not in token  # opaque: the position is not shown as is

    # Every single-character change, wherever it falls (base64's unused trailing bits too).
    altered = [
        token[:i] + ("B" if token[i] == "A" else "A") + token[i + 1 :] for i in range(len(token))
    ] + [token.replace(".", ""), "x" + token, "not a token"]
    for bad in altered:
        event = http_api_event(LIST, {"runId": run}, raw_query_string=urlencode({"nextToken": bad}))
        answer = load_handler(LIST)(event, FakeLambdaContext())
        assert answer["statusCode"] == 400, bad
        assert json.loads(answer["body"])["detail"].startswith("nextToken: ")
    event = http_api_event(LIST, {"runId": other}, raw_query_string=urlencode({"nextToken": token}))
    assert load_handler(LIST)(event, FakeLambdaContext())["statusCode"] == 400
    with pytest.raises(Exception, match="nextToken") as raised:
        direct_page(other, nextToken=token)
    assert type(raised.value).__name__ == "InvalidSignalRequest"


@pytest.mark.parametrize("page", PAGES, ids=["http", "direct"])
def test_every_page_stays_under_5_mb_whatever_the_payloads(fresh_runtime: Any, page: Any) -> None:
    run = str(uuid4())
    store = runtime.store()
    # 262,142 bytes of UTF-8 each, escaped to 12 ASCII bytes an emoji in Lambda's JSON.
    payload = json.dumps("\U0001f600" * 65_535, ensure_ascii=False)
    for n in range(8):
        store.register_waiter(run, f"s{n}", f"go{n}")
        store.deliver_signal(run, f"go{n}", payload)

    pages = all_pages(page, run, limit=100)

    assert all(size < FIVE_MB for _, size in pages), [size for _, size in pages]
    assert len(pages) > 1
    listed = [w["stepKey"] for p, _ in pages for w in p["waiters"]]
    assert listed == [f"s{n}" for n in range(8)]
    assert all(w["payload"] == json.loads(payload) for p, _ in pages for w in p["waiters"])


@pytest.mark.parametrize("page", PAGES, ids=["http", "direct"])
def test_a_token_after_the_longest_step_keys_leads_on(fresh_runtime: Any, page: Any) -> None:
    run = str(uuid4())
    keys = ["\U0001f600" * 256, "\u754c" * 255 + "b", "z"]
    for key in keys:
        runtime.store().register_waiter(run, key, "go")
        time.sleep(0.002)
    pages = all_pages(page, run, limit=1)
    assert [w["stepKey"] for p, _ in pages for w in p["waiters"]] == keys


def test_the_early_signals_list_stays_under_5_mb(fresh_runtime: Any) -> None:
    store = InMemoryFlowSignalStore()
    run = "many-early-signals"
    for n in range(2_100):
        name = f"{n:04}" + "\U0001f600" * 252
        store.deliver_signal(run, name, "{}", buffer_for=timedelta(hours=1))
    answer = SignalService(store, runtime.metrics).list_buffered(run)
    size = len(json.dumps(json.dumps(answer, ensure_ascii=False)))
    assert size < FIVE_MB
    assert 1_000 < len(answer["signals"]) < 2_100
    assert [s["signalName"][:4] for s in answer["signals"]][:3] == ["0000", "0001", "0002"]


@pytest.mark.parametrize("page", PAGES, ids=["http", "direct"])
def test_one_signals_waiters_page_after_page(fresh_runtime: Any, page: Any) -> None:
    run = str(uuid4())
    store = runtime.store()
    for n in range(7):
        store.register_waiter(run, f"step-{n}", "approve" if n % 2 == 0 else "review")
        time.sleep(0.002)
    store.deliver_signal(run, "approve", '{"ok": true}')

    pages = all_pages(page, run, limit=3, signalName=" approve ")

    assert [len(p["waiters"]) for p, _ in pages] == [3, 1]
    listed = [w for p, _ in pages for w in p["waiters"]]
    assert [w["stepKey"] for w in listed] == ["step-0", "step-2", "step-4", "step-6"]
    assert listed[0]["payload"] == {"ok": True} and listed[0]["state"] == "Delivered"
    assert page(run, signalName="absent")[0] == {"waiters": [], "nextToken": None}


def test_a_token_serves_only_the_listing_it_came_from(fresh_runtime: Any) -> None:
    run = str(uuid4())
    for n in range(4):
        runtime.store().register_waiter(run, f"step-{n}", "go")
    by_name = http_page(run, limit=1, signalName="go")[0]["nextToken"]
    whole = http_page(run, limit=1)[0]["nextToken"]
    for token, query in (
        (by_name, {}),
        (by_name, {"signalName": "other"}),
        (whole, {"signalName": "go"}),
    ):
        event = http_api_event(
            LIST, {"runId": run}, raw_query_string=urlencode({**query, "nextToken": token})
        )
        answer = load_handler(LIST)(event, FakeLambdaContext())
        assert answer["statusCode"] == 400, query
        assert json.loads(answer["body"])["detail"].startswith("nextToken: ")


@pytest.mark.parametrize("bad", ["", " ", "\x00", "x" * 257])
def test_a_bad_signal_name_to_list_is_400_naming_it(fresh_runtime: Any, bad: str) -> None:
    event = http_api_event(LIST, {"runId": "run"}, raw_query_string=urlencode({"signalName": bad}))
    answer = load_handler(LIST)(event, FakeLambdaContext())
    assert answer["statusCode"] == 400
    assert json.loads(answer["body"])["detail"].startswith("signalName: ")
    with pytest.raises(Exception, match="signalName") as raised:
        direct_page("run", signalName=bad)
    assert type(raised.value).__name__ == "InvalidSignalRequest"
