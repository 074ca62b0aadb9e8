"""Fixtures: a controllable clock, and one store per backend (in-memory, moto, DynamoDB Local)."""

from __future__ import annotations

import contextlib
import functools
import io
import json
import logging
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NoReturn
from uuid import uuid4

import boto3
import botocore.loaders
import botocore.session
import moto.kms.models
import pytest
from botocore.config import Config
from moto import mock_aws
from moto.kms.utils import generate_private_key

import dynamodb_local
from flowsignals import DynamoDBFlowSignalStore, FlowSignalStore, InMemoryFlowSignalStore
from flowsignals.backends.aws import aws_session
from flowsignals.lambdas import runtime
from flowsignals.lambdas.settings import settings
from flowsignals.testing import create_waiter_table

REQUIRE_DYNAMODB_LOCAL = os.environ.get("FLOWSIGNALS_REQUIRE_DYNAMODB_LOCAL") == "1"
REGION = "us-east-1"
TABLE_NAME = "flowsignals-waiters"


@pytest.fixture(scope="session", autouse=True)
def _offline_aws() -> Iterator[None]:
    """No test may reach AWS: fake credentials, a fixed region, no profile."""
    patch = pytest.MonkeyPatch()
    for name in (
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_DYNAMODB",
    ):
        patch.delenv(name, raising=False)
    patch.setenv("AWS_ACCESS_KEY_ID", "testing")
    patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    patch.setenv("AWS_DEFAULT_REGION", REGION)
    yield
    patch.undo()


@pytest.fixture(scope="session", autouse=True)
def _one_botocore_loader() -> Iterator[None]:
    """Every botocore session of the process shares one loader of botocore's data files. Tests
    make many sessions (each fresh runtime and each moto mock starts one), and each would parse
    the same endpoint and service files again, a tenth of a second apiece."""
    patch = pytest.MonkeyPatch()
    patch.setattr(
        botocore.session, "create_loader", functools.cache(botocore.loaders.create_loader)
    )
    yield
    patch.undo()


@pytest.fixture(scope="session", autouse=True)
def _one_moto_kms_key() -> Iterator[None]:
    """moto gives each encrypted table a KMS key of its own, generating an RSA key each time (a
    twentieth of a second per moto table): here one key per kind serves them all. No test looks
    at that key."""
    patch = pytest.MonkeyPatch()
    patch.setattr(moto.kms.models, "generate_private_key", functools.cache(generate_private_key))
    yield
    patch.undo()


class FakeClock:
    """A clock that moves only when told; starts with sub-millisecond digits to truncate."""

    def __init__(self) -> None:
        # Far in the future: DynamoDB Local applies TTL, and a row whose Ttl has passed vanishes.
        self.now = datetime(2096, 11, 23, 10, 15, 30, 123456, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now

    @property
    def stored_now(self) -> datetime:
        """``now`` as the stores keep it: whole milliseconds."""
        return self.now.replace(microsecond=self.now.microsecond // 1000 * 1000)


@pytest.fixture
def no_retry_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore still retries, but without sleeping between attempts: fault tests stay quick."""
    monkeypatch.setattr("botocore.endpoint.time", SimpleNamespace(sleep=lambda _: None))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@dataclass
class Backend:
    name: str
    store: FlowSignalStore
    client: Any = None  # the boto3 client of a DynamoDB backend
    table_name: str = TABLE_NAME

    def raw_item(self, run_id: Any, step_key: str) -> dict[str, Any] | None:
        response = self.client.get_item(
            TableName=self.table_name,
            Key={"RunId": {"S": str(run_id)}, "StepKey": {"S": step_key}},
            ConsistentRead=True,
        )
        item: dict[str, Any] | None = response.get("Item")
        return item


def dynamodb_local_client(endpoint: str, **config: Any) -> Any:
    return boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name=REGION,
        config=Config(**{"retries": {"mode": "standard"}, "max_pool_connections": 32, **config}),
    )


@pytest.fixture(scope="session")
def dynamodb_local_endpoint() -> Iterator[str]:
    """DynamoDB Local for the whole session: $DYNAMODB_LOCAL_ENDPOINT, or started here."""
    given = os.environ.get("DYNAMODB_LOCAL_ENDPOINT")
    if given:
        yield given
        return
    server = contextlib.ExitStack()
    try:
        endpoint = server.enter_context(dynamodb_local.running())
    except dynamodb_local.DynamoDBLocalUnavailable as error:
        dynamodb_local_unavailable(error)
    with server:
        yield endpoint


def dynamodb_local_unavailable(error: dynamodb_local.DynamoDBLocalUnavailable) -> NoReturn:
    """Skip the test loudly, or fail it where DynamoDB Local is required (CI)."""
    message = f"DYNAMODB LOCAL IS NOT RUNNING, ITS TESTS DID NOT RUN: {error}"
    if REQUIRE_DYNAMODB_LOCAL:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def dynamodb_local_table(dynamodb_local_endpoint: str) -> Iterator[tuple[Any, str]]:
    """A client of DynamoDB Local and the session's own waiter table (tests use fresh run
    ids). Its own: the test workers, and other sessions on a server of the developer's
    (DYNAMODB_LOCAL_ENDPOINT), each have theirs."""
    client = dynamodb_local_client(dynamodb_local_endpoint)
    table = f"{TABLE_NAME}-{uuid4().hex[:12]}"
    create_waiter_table(client, table)
    yield client, table
    client.delete_table(TableName=table)


@contextlib.contextmanager
def moto_table() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        create_waiter_table(client, TABLE_NAME)
        yield client


@pytest.fixture
def moto_client() -> Iterator[Any]:
    with moto_table() as client:
        yield client


def make_backend(name: str, request: pytest.FixtureRequest, clock: FakeClock) -> Backend:
    if name == "memory":
        return Backend(name, InMemoryFlowSignalStore(clock=clock))
    if name == "moto":
        client, table = request.getfixturevalue("moto_client"), TABLE_NAME
    else:
        client, table = request.getfixturevalue("dynamodb_local_table")
    store = DynamoDBFlowSignalStore(table, client=client, clock=clock)
    return Backend(name, store, client, table)


ALL_BACKENDS = ["memory", "moto", pytest.param("dynamodb-local", marks=pytest.mark.dynamodb_local)]
DYNAMODB_BACKENDS = ["moto", pytest.param("dynamodb-local", marks=pytest.mark.dynamodb_local)]


@pytest.fixture(params=ALL_BACKENDS)
def backend(request: pytest.FixtureRequest, clock: FakeClock) -> Backend:
    return make_backend(request.param, request, clock)


@pytest.fixture
def store(backend: Backend) -> FlowSignalStore:
    return backend.store


@pytest.fixture(params=DYNAMODB_BACKENDS)
def dynamodb_backend(request: pytest.FixtureRequest, clock: FakeClock) -> Backend:
    return make_backend(request.param, request, clock)


LOCAL_SERVER = Path(__file__).resolve().parent.parent / "infra" / "local_server.py"


def start_server(port: int, **env: str) -> subprocess.Popen[str]:
    """``make run``'s server in a subprocess on ``port`` (no AWS settings inherited)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | env
    return subprocess.Popen(
        [sys.executable, str(LOCAL_SERVER)],
        env=environment | {"PORT": str(port)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@contextlib.contextmanager
def running_local_server(**env: str) -> Iterator[str]:
    """The local server on a free port, with embedded DynamoDB and ``env`` (CORS_ALLOW_ORIGINS,
    ...); yields its base URL once it listens."""
    port = dynamodb_local.free_port()
    server = start_server(port, **env)
    try:
        assert server.stdout is not None
        banner = [server.stdout.readline() for _ in range(5)]
        assert f"listening on http://127.0.0.1:{port}" in banner[0], banner
        assert any("NOT enforced" in line for line in banner)
        cors = "CORS: off" if not env.get("CORS_ALLOW_ORIGINS") else "CORS: for "
        assert any(cors in line for line in banner), banner
        # Read on whatever the server prints: a full pipe would stop it mid-request.
        for stream in (server.stdout, server.stderr):
            threading.Thread(target=stream.read, daemon=True).start()
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def reset_runtime() -> None:
    """Forget the process's settings, AWS session, store and services, as a new Lambda
    process would (its session read the AWS settings of its time, as boto3's does)."""
    for cached in (
        settings,
        aws_session,
        runtime.store,
        runtime.service,
        runtime.link_keys,
        runtime.approvals,
    ):
        cached.cache_clear()


@pytest.fixture
def fresh_runtime(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The functions' runtime as a new process has it, over a fresh moto table named by
    TABLE_NAME; yields the table's client. Tests may set more variables before the first call."""
    monkeypatch.setenv("TABLE_NAME", TABLE_NAME)
    with moto_table() as client:
        reset_runtime()
        yield client
    reset_runtime()


# The key and base of the approval links the functions mint in tests.
LINK_KEY = {"keyId": "test", "key": "k" * 40}
LINK_BASE = "https://approvals.example.com/base"


@pytest.fixture
def links(fresh_runtime: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``fresh_runtime`` with approval links signed by LINK_KEY and pointing at LINK_BASE."""
    monkeypatch.setenv("LINK_KEY", json.dumps(LINK_KEY))
    monkeypatch.setenv("LINK_BASE_URL", LINK_BASE)
    reset_runtime()
    return fresh_runtime


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """What the functions log. Powertools' Logger writes to the stdout it held when it was
    created, which capsys cannot see, so its handler is pointed here instead."""
    handler = runtime.logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    level = runtime.logger.log_level
    runtime.logger.setLevel(logging.DEBUG)  # whatever a function logs, at any level
    runtime.logger.debug("probe")
    assert '"probe"' in buffer.getvalue(), "the logs fixture must see what the functions log"
    buffer.seek(0)
    buffer.truncate()
    yield buffer
    runtime.logger.setLevel(level)
    handler.setStream(previous)


@contextlib.contextmanager
def silent_endpoint() -> Iterator[str]:
    """An endpoint that accepts connections (in the kernel's backlog) and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
