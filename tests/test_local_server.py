"""`make run`'s server: a whole approval over real HTTP, answered as API Gateway would."""

from __future__ import annotations

import contextlib
import http.client
import importlib
import json
import signal
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID, uuid4

import boto3
import pytest

from conftest import running_local_server, start_server
from dynamodb_local import free_port
from local_server import load_routes
from template_yaml import cors_configuration, http_routes

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


def test_a_rejection_and_an_early_signal_over_http(base_url: str) -> None:
    run = f"order-{uuid4().hex[:6]}"
    register = json.dumps({"signalName": "legal"})
    assert request(base_url, "PUT", f"/runs/{run}/waiters/legal-review", register)[0] == 200
    rejection = json.dumps({"error": "Rejected", "cause": "Missing clause 4"})
    status, _, body = request(base_url, "POST", f"/runs/{run}/signals/legal/failure", rejection)
    assert status == 200 and body["stepKey"] == "legal-review"
    waiter = request(base_url, "GET", f"/runs/{run}/waiters/legal-review")[2]
    assert waiter["failure"] == {"error": "Rejected", "cause": "Missing clause 4"}

    status, _, body = request(base_url, "POST", f"/runs/{run}/signals/ship?bufferSeconds=60", "7")
    assert status == 202 and body["buffered"] is True
    listed = request(base_url, "GET", f"/runs/{run}/signals")[2]["signals"]
    assert [signal["signalName"] for signal in listed] == ["ship"]
    ship = json.dumps({"signalName": "ship"})
    status, _, waiter = request(base_url, "PUT", f"/runs/{run}/waiters/shipping", ship)
    assert status == 200 and waiter["state"] == "Delivered" and waiter["payload"] == 7
    assert request(base_url, "GET", f"/runs/{run}/signals")[2] == {"signals": []}


@pytest.mark.parametrize("segment", ["%FF", "%ED%A0%80", "a%C3"])
def test_a_path_that_is_not_utf8_once_decoded_is_a_bad_request(base_url: str, segment: str) -> None:
    status, _, body = request(base_url, "GET", f"/runs/{segment}/waiters/s")
    assert (status, body) == (400, {"message": "Bad Request"})


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


def test_local_authorization_stands_in_for_iam_on_the_iam_routes_only() -> None:
    with running_local_server(LOCAL_AUTHORIZATION="AWS4-HMAC-SHA256 stand-in") as base:
        listing = f"/runs/{uuid4()}/waiters"
        for headers in ({}, {"Authorization": "AWS4-HMAC-SHA256 another"}):
            status, _, body = request(base, "GET", listing, **headers)
            assert (status, body) == (403, {"message": "Forbidden"}), headers
        signed = request(base, "GET", listing, Authorization="AWS4-HMAC-SHA256 stand-in")
        assert signed[0] == 200
        # The approval pages have no authorizer: the token is the credential.
        page = urllib.request.Request(base + "/approvals/not-a-token")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(page, timeout=10)
        assert refused.value.code == 403
        assert refused.value.headers["Content-Type"].startswith("text/html")


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

        # Concurrent requests for different runs: each keeps its own body (the handlers keep
        # the current request in module state, as one Lambda process does).
        runs = [f"crowd-{n}" for n in range(64)]
        for each in runs:
            assert request(base, "PUT", f"/runs/{each}/waiters/s", register)[0] == 200
        start = threading.Barrier(len(runs))

        def deliver_own(each: str) -> int:
            start.wait()
            return request(base, "POST", f"/runs/{each}/signals/go", json.dumps({"mine": each}))[0]

        with ThreadPoolExecutor(max_workers=len(runs)) as pool:
            statuses = list(pool.map(deliver_own, runs))
        assert statuses == [200] * len(runs)
        for each in runs:
            assert request(base, "GET", f"/runs/{each}/waiters/s")[2]["payload"] == {"mine": each}
    finally:
        server.terminate()
        server.wait(timeout=10)
    client = boto3.client("dynamodb", endpoint_url=dynamodb_local_endpoint, region_name="us-east-1")
    item = client.get_item(
        TableName="flowsignals-local", Key={"RunId": {"S": str(run)}, "StepKey": {"S": "s"}}
    )["Item"]
    assert item["PayloadJson"] == {"S": "[1]"}


def answer_of(connection: socket.socket) -> tuple[int, http.client.HTTPMessage, Any]:
    """The status, headers and JSON body of the HTTP answer read from ``connection``."""
    answer = http.client.HTTPResponse(connection)
    answer.begin()
    raw = answer.read()
    return answer.status, answer.headers, json.loads(raw) if raw else None


def raw_request(base: str, data: bytes) -> tuple[int, http.client.HTTPMessage, Any]:
    """``data`` sent as is on a new connection, then EOF; the answer."""
    target = urlsplit(base)
    with socket.create_connection((target.hostname, target.port), timeout=10) as connection:
        connection.sendall(data)
        connection.shutdown(socket.SHUT_WR)
        return answer_of(connection)


def test_a_chunked_body_is_delivered_whole(base_url: str) -> None:
    run = uuid4()
    register = json.dumps({"signalName": "go"})
    assert request(base_url, "PUT", f"/runs/{run}/waiters/s", register)[0] == 200
    chunks = (  # sizes in either case, extensions (with BWS, quoted ";"), a trailer to skip
        b'A;name\r\n{"note": "\r\n'
        b'4 ; q = "a;\\"b" ; t=v\r\nx;y"\r\n'
        b'd\r\n, "ok": true}\r\n'
        b"0;last\r\nChecksum: abc\r\n\r\n"
    )
    head = f"POST /runs/{run}/signals/go HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    status, _, body = raw_request(base_url, head.encode() + chunks)
    assert status == 200 and body["delivered"] is True

    status, _, body = request(base_url, "GET", f"/runs/{run}/waiters/s")
    assert status == 200 and body["payload"] == {"note": "x;y", "ok": True}


@pytest.mark.parametrize(
    ("framing", "status"),
    [
        (b"Content-Length: abc\r\n\r\n{}", 400),
        (b"Content-Length: -1\r\n\r\n{}", 400),
        (b"Content-Length: +2\r\n\r\n{}", 400),
        (b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}", 400),
        (b"Content-Length: 5\r\n\r\n{}", 400),  # the body ends early
        (b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", 400),
        (b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n", 400),
        (b"Transfer-Encoding: chunked\r\n\r\n1\r\n{}\r\n0\r\n\r\n", 400),  # data overruns size
        (b"Transfer-Encoding: chunked\r\n\r\n2;=v\r\n{}\r\n0\r\n\r\n", 400),
        (b"Transfer-Encoding: chunked\r\n\r\n2\n{}\r\n0\r\n\r\n", 400),
        (b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\nno colon\r\n\r\n", 400),
        (b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n", 400),  # no last chunk
        (b"Transfer-Encoding: gzip\r\n\r\n{}", 400),
        (b"Transfer-Encoding: gzip, chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", 501),
        (b"Content-Length: 18446744073709551616\r\n\r\n{}", 413),
        (b"Transfer-Encoding: chunked\r\n\r\n10000000000000000\r\n{}\r\n0\r\n\r\n", 413),
    ],
)
def test_a_malformed_body_framing_is_answered_and_closed(
    base_url: str, framing: bytes, status: int
) -> None:
    head = f"POST /runs/{uuid4()}/signals/go HTTP/1.1\r\nHost: x\r\n".encode()
    answered, headers, body = raw_request(base_url, head + framing)
    assert (answered, body) == (status, {"message": HTTPStatus(status).phrase})
    assert headers["Content-Type"] == "application/json" and headers["Connection"] == "close"


def test_a_body_sent_to_no_route_is_read_before_the_answer(base_url: str) -> None:
    # Left unread, a large body turns the server's close into a reset: the 404 would be lost.
    status, _, body = request(base_url, "POST", "/nothing-here", "x" * 8_000_000)
    assert (status, body) == (404, {"message": "Not Found"})


def test_64_clients_arriving_while_the_server_is_busy_are_all_answered() -> None:
    # A stopped server stands for a busy one: the kernel queues connections up to the listen
    # backlog, and only those; a connection past it is not even established until accepted.
    port, clients = free_port(), 64
    server = start_server(port)
    try:
        assert server.stdout is not None and "listening" in server.stdout.readline()
        with contextlib.ExitStack() as connections:
            server.send_signal(signal.SIGSTOP)
            try:
                opened = [
                    connections.enter_context(socket.create_connection(("127.0.0.1", port), 10))
                    for _ in range(clients)
                ]
                for number, connection in enumerate(opened):
                    get = f"GET /runs/{uuid4()}/waiters/{number} HTTP/1.1\r\nHost: x\r\n\r\n"
                    connection.sendall(get.encode())
            finally:
                server.send_signal(signal.SIGCONT)
            statuses = [answer_of(connection)[0] for connection in opened]
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert statuses == [404] * clients


def test_repeated_headers_reach_the_handler_joined_with_commas(base_url: str) -> None:
    run = uuid4()
    register = json.dumps({"signalName": "go"})
    assert request(base_url, "PUT", f"/runs/{run}/waiters/s", register)[0] == 200
    deliver = (
        f"POST /runs/{run}/signals/go HTTP/1.1\r\nHost: x\r\n"
        "Idempotency-Key: a\r\nContent-Length: 2\r\nidempotency-key: b\r\n\r\n{}"
    )
    status, _, body = raw_request(base_url, deliver.encode())
    assert status == 200 and body["replayed"] is False

    # The key kept is "a,b", as API Gateway would have passed it: a retry with it is a replay.
    status, _, body = request(
        base_url, "POST", f"/runs/{run}/signals/go", "{}", **{"Idempotency-Key": "a,b"}
    )
    assert status == 200 and body["replayed"] is True


def test_a_header_value_s_surrounding_whitespace_is_dropped(base_url: str) -> None:
    run = uuid4()
    register = json.dumps({"signalName": "go"})
    assert request(base_url, "PUT", f"/runs/{run}/waiters/s", register)[0] == 200

    def deliver(key: str) -> tuple[int, Any]:
        data = (
            f"POST /runs/{run}/signals/go HTTP/1.1\r\nHost: x\r\n"
            f"Idempotency-Key: {key}\r\nContent-Length: 2\r\n\r\n{{}}"
        )
        status, _, body = raw_request(base_url, data.encode())
        return status, body

    assert deliver("\t k \t")[1]["replayed"] is False
    assert deliver("k")[1]["replayed"] is True  # the same key, as API Gateway passes it
    status, body = deliver("   ")  # no key at all once its spaces are dropped
    assert (status, body["detail"]) == (400, "Idempotency-Key: must be 1 to 128 characters, got 0")


def test_concurrent_deliveries_on_embedded_dynamodb_deliver_once() -> None:
    clients = 16
    with running_local_server() as base, ThreadPoolExecutor(clients) as pool:
        for _ in range(10):
            run = uuid4()
            register = json.dumps({"signalName": "go"})
            assert request(base, "PUT", f"/runs/{run}/waiters/s", register)[0] == 200
            started = threading.Barrier(clients)

            def deliver(run: UUID = run, started: threading.Barrier = started) -> int:
                started.wait(timeout=30)
                return request(base, "POST", f"/runs/{run}/signals/go", "{}")[0]

            statuses = list(pool.map(lambda _: deliver(), range(clients)))
            assert sorted(statuses) == [200] + [409] * (clients - 1), run


DASHBOARD = "https://dashboard.example.com"


@pytest.fixture(scope="module")
def cors_url() -> Iterator[str]:
    with running_local_server(CORS_ALLOW_ORIGINS=f"{DASHBOARD}, http://localhost:5173") as url:
        yield url


def preflight(base: str, path: str, origin: str, method: str = "PUT") -> tuple[int, dict[str, str]]:
    headers = {"Origin": origin, "Access-Control-Request-Method": method}
    headers["Access-Control-Request-Headers"] = "content-type,idempotency-key"
    status, answer_headers, body = request(base, "OPTIONS", path, **headers)
    assert body is None
    return status, {k.lower(): v for k, v in answer_headers.items()}


def cors_headers(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items() if k.lower().startswith("access-control-")}


def test_a_preflight_from_an_allowed_origin_is_answered_with_the_templates_cors(
    cors_url: str,
) -> None:
    configuration = cors_configuration()
    # Any path: API Gateway answers a preflight itself, before routing (no OPTIONS routes).
    for path in (f"/runs/{uuid4()}/waiters/s", "/nothing-here"):
        status, headers = preflight(cors_url, path, "http://localhost:5173")
        assert status == 204
        assert cors_headers(headers) == {
            "access-control-allow-origin": "http://localhost:5173",
            "access-control-allow-methods": ",".join(configuration["AllowMethods"]),
            "access-control-allow-headers": ",".join(configuration["AllowHeaders"]),
            "access-control-max-age": str(configuration["MaxAge"]),
        }
        assert {"put", "content-type", "idempotency-key"} <= {
            value.strip().lower()
            for name in ("access-control-allow-methods", "access-control-allow-headers")
            for value in headers[name].split(",")
        }
    # Without Access-Control-Request-Method it is no preflight: routed, and there is no route.
    status, _, body = request(cors_url, "OPTIONS", "/nothing-here", Origin=DASHBOARD)
    assert (status, body) == (404, {"message": "Not Found"})


def test_a_preflight_from_another_origin_gets_no_cors_headers(cors_url: str) -> None:
    """API Gateway answers it too, but allows nothing: the browser refuses the request."""
    for origin in ("https://evil.example", "null", DASHBOARD + "/"):
        status, headers = preflight(cors_url, f"/runs/{uuid4()}/waiters/s", origin)
        assert (status, cors_headers(headers)) == (204, {}), origin


def test_answers_to_an_allowed_origin_carry_its_cors_headers_and_no_others(cors_url: str) -> None:
    run = uuid4()
    register = json.dumps({"signalName": "go"})
    path = f"/runs/{run}/waiters/s"
    status, headers, _ = request(cors_url, "PUT", path, register, Origin=DASHBOARD)
    assert status == 200
    assert cors_headers(headers) == {
        "access-control-allow-origin": DASHBOARD,
        "access-control-expose-headers": "retry-after",
    }
    for origin in ("https://evil.example", DASHBOARD + ":8443", DASHBOARD.upper()):
        status, headers, _ = request(cors_url, "GET", path, Origin=origin)
        assert (status, cors_headers(headers)) == (200, {}), origin
    status, headers, _ = request(cors_url, "GET", "/nothing-here", Origin=DASHBOARD)
    assert status == 404 and cors_headers(headers)["access-control-allow-origin"] == DASHBOARD


def test_the_approval_pages_answer_no_cors_as_their_api_has_none(cors_url: str) -> None:
    """People open the pages, pages of other origins do not call them: their API (apart from
    the IAM API) has no CorsConfiguration, so a preflight is routed (no route) and answers
    carry nothing."""
    path = "/approvals/not-a-token"
    ask = {"Origin": DASHBOARD, "Access-Control-Request-Method": "POST"}
    status, headers, body = request(cors_url, "OPTIONS", path, **ask)
    assert (status, body, cors_headers(headers)) == (404, {"message": "Not Found"}, {})
    status, headers, _ = request(cors_url, "HEAD", path, Origin=DASHBOARD)  # the page, bodiless
    assert status == 403 and cors_headers(headers) == {}


def test_without_cors_allow_origins_there_is_no_cors(base_url: str) -> None:
    """The template's default: OPTIONS is a route like any other (none), nothing is added."""
    status, _, body = request(
        base_url,
        "OPTIONS",
        f"/runs/{uuid4()}/waiters/s",
        Origin=DASHBOARD,
        **{"Access-Control-Request-Method": "PUT"},
    )
    assert (status, body) == (404, {"message": "Not Found"})
    status, headers, _ = request(base_url, "GET", f"/runs/{uuid4()}/waiters", Origin=DASHBOARD)
    assert (status, cors_headers(headers)) == (200, {})


def test_the_access_log_never_holds_a_link_token() -> None:
    """A link's token is its credential: what the server prints for a request (the access
    log, an error, the functions' own logs) shows where it went, never the token, wherever
    in the request line it appears."""
    port = free_port()
    server = start_server(port)
    try:
        assert server.stdout is not None
        banner = [server.stdout.readline() for _ in range(5)]
        assert "listening" in banner[0], banner
        base, run = f"http://127.0.0.1:{port}", uuid4()
        register = json.dumps({"signalName": "approve", "timeoutSeconds": 3600})
        assert request(base, "PUT", f"/runs/{run}/waiters/s", register)[0] == 200
        links = request(base, "POST", f"/runs/{run}/signals/approve/links", "{}")[2]["links"]
        tokens = [urlsplit(url).path.rpartition("/")[2] for url in links.values()]
        approve, reject = tokens
        target = urlsplit(base)
        connection = http.client.HTTPConnection(target.hostname or "", target.port, timeout=10)
        asked = [
            ("GET", f"/approvals/{approve}"),
            ("HEAD", f"/approvals/{approve}"),
            ("POST", f"/approvals/{approve}"),
            ("GET", f"/approvals/{reject}?again={reject}"),
            ("GET", f"/approvals/{reject}/more"),  # no such route: 404
            ("GET", f"/runs/{run}/waiters?nextToken={approve}&limit=1"),
        ]
        for method, path in asked:
            connection.request(method, path)
            connection.getresponse().read()
        connection.close()
        # Four words: http.server refuses it, with the request line in its message.
        malformed = f"GET /approvals/{approve}?t={reject} HTTP/1.1 extra\r\n\r\n".encode()
        with socket.create_connection((target.hostname, target.port), timeout=10) as raw:
            raw.sendall(malformed)
            assert b"Bad Request" in raw.makefile("rb").read()
    finally:
        server.terminate()
        printed, logged = server.communicate(timeout=10)
    for token in tokens:
        assert token not in printed + logged
    assert logged.count("/approvals/") >= len(asked), logged  # each request is still there
