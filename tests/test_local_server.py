"""`make run`'s server: a whole approval over real HTTP, answered as API Gateway would."""

from __future__ import annotations

import importlib
import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import boto3
import pytest

from conftest import running_local_server, start_server
from dynamodb_local import free_port
from local_server import load_routes
from template_yaml import http_routes

SERVER = Path(__file__).resolve().parent.parent / "infra" / "local_server.py"


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with running_local_server() as url:
        yield url


def request(
    base: str, method: str, path: str, body: str | None = None, **headers: str
) -> tuple[int, dict[str, str], Any]:
    data = None if body is None else body.encode()
    call = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(call, timeout=10) as answer:
            status, answer_headers, raw = answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        status, answer_headers, raw = error.code, dict(error.headers), error.read()
    return status, answer_headers, json.loads(raw) if raw else None


def test_a_whole_approval_over_http(base_url: str) -> None:
    run = uuid4()
    waiter = f"/runs/{run}/waiters/manager%20approval"
    register = json.dumps({"signalName": "approve", "timeoutSeconds": 3600})

    status, _, body = request(
        base_url, "PUT", waiter, register, **{"Content-Type": "application/json"}
    )
    assert status == 200 and body["stepKey"] == "manager approval" and body["state"] == "Waiting"

    status, _, body = request(base_url, "POST", f"/runs/{run}/signals/approve", '{"ok": true}')
    assert status == 200 and body["delivered"] is True and body["stepKey"] == "manager approval"

    status, headers, body = request(base_url, "POST", f"/runs/{run}/signals/approve", "{}")
    assert status == 409 and body["code"] == "AlreadyDelivered"
    assert headers["Content-Type"] == "application/problem+json"

    status, _, body = request(base_url, "GET", waiter)
    assert status == 200 and body["payload"] == {"ok": True} and body["state"] == "Delivered"

    status, _, body = request(base_url, "GET", f"/runs/{run}/waiters")
    assert status == 200 and [w["stepKey"] for w in body["waiters"]] == ["manager approval"]

    status, _, body = request(base_url, "POST", f"/runs/{run}/signals/other", "{not json")
    assert status == 400 and body["code"] == "InvalidRequest"

    status, _, body = request(base_url, "DELETE", waiter)
    assert (status, body) == (204, None)

    status, _, body = request(base_url, "GET", waiter)
    assert status == 404 and body["code"] == "NotFound"


def test_unknown_routes_and_methods_are_answered_as_api_gateway_does(base_url: str) -> None:
    run = uuid4()
    for method, path in [
        ("GET", "/nothing-here"),
        ("PATCH", f"/runs/{run}/waiters/s"),
        ("GET", f"/runs/{run}/signals/approve"),
        ("PUT", f"/runs/{run}/waiters"),
        ("GET", f"/runs/{run}/waiters/a/b"),
    ]:
        status, _, body = request(base_url, method, path)
        assert (status, body) == (404, {"message": "Not Found"}), (method, path)


def test_the_route_table_is_the_templates() -> None:
    routes = {route.route_key: route.handler for route in load_routes()}
    assert set(routes) == set(http_routes())
    for route_key, (module, function) in http_routes().items():
        assert routes[route_key] is getattr(importlib.import_module(module), function)


def test_a_busy_port_is_a_clear_message_not_a_traceback() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = start_server(taken.getsockname()[1])
        _, errors = server.communicate(timeout=30)
    assert server.returncode != 0
    assert "cannot listen" in errors and "Traceback" not in errors


@pytest.mark.dynamodb_local
def test_dynamodb_endpoint_serves_from_dynamodb_local(dynamodb_local_endpoint: str) -> None:
    port = free_port()
    server = start_server(
        port,
        DYNAMODB_ENDPOINT=dynamodb_local_endpoint,
        AWS_ACCESS_KEY_ID="testing",  # DynamoDB Local keeps one database per access key
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    try:
        assert server.stdout is not None
        banner = [server.stdout.readline() for _ in range(3)]
        assert dynamodb_local_endpoint in banner[2], banner
        base, run = f"http://127.0.0.1:{port}", uuid4()
        register = json.dumps({"signalName": "go"})
        assert request(base, "PUT", f"/runs/{run}/waiters/s", register)[0] == 200
        assert request(base, "POST", f"/runs/{run}/signals/go", "[1]")[0] == 200
    finally:
        server.terminate()
        server.wait(timeout=10)
    client = boto3.client("dynamodb", endpoint_url=dynamodb_local_endpoint, region_name="us-east-1")
    item = client.get_item(
        TableName="flowsignals-local", Key={"RunId": {"S": str(run)}, "StepKey": {"S": "s"}}
    )["Item"]
    assert item["PayloadJson"] == {"S": "[1]"}
