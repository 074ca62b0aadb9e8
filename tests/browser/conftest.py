"""Real Chromium, driven by Playwright: one browser for the session, a fresh context (cookies,
cache, storage) per test, and `make run`'s server started with the environment a test needs.

Without Chromium the browser tests skip with a loud reason; CI (`.ci/run`) installs it and sets
FLOWSIGNALS_REQUIRE_BROWSER=1, which turns that skip into a failure.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from conftest import running_local_server

REQUIRE_BROWSER = os.environ.get("FLOWSIGNALS_REQUIRE_BROWSER") == "1"
# Headless as root on a closed network: no sandbox (it refuses root), no GPU, and none of the
# background connections (QUIC, updates, sync) that would wait on a network that is not there.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """The system's Chromium (never a browser Playwright downloads)."""
    executable = shutil.which("chromium")
    if executable is None:
        message = (
            "CHROMIUM IS NOT INSTALLED, THE BROWSER TESTS DID NOT RUN: apt-get install -y chromium"
        )
        if REQUIRE_BROWSER:
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A page in a context of its own: nothing a test leaves (cached preflights included)
    reaches the next."""
    context = browser.new_context()
    yield context.new_page()
    context.close()


@pytest.fixture(scope="session")
def local_server() -> Iterator[Callable[..., str]]:
    """``local_server(CORS_ALLOW_ORIGINS=...)``: the base URL of `make run`'s server with that
    environment, started at the first call and stopped when the session ends."""
    started: dict[tuple[tuple[str, str], ...], str] = {}
    with contextlib.ExitStack() as servers:

        def start(**env: str) -> str:
            key = tuple(sorted(env.items()))
            if key not in started:
                started[key] = servers.enter_context(running_local_server(**env))
            return started[key]

        yield start


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every browser test in one xdist group (``--dist loadgroup``, pyproject.toml), so one
    worker runs them all: one Chromium and one set of servers, not one per worker."""
    here = Path(__file__).resolve().parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.xdist_group("browser"))
