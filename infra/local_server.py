"""`make run`: the HTTP API of template.yaml on http://127.0.0.1:3000, no Docker, no AWS account.

Routes come from template.yaml's HttpApi events. Each request becomes an API Gateway HTTP API
(payload 2.0) event, as API Gateway builds it (decoded rawPath and pathParameters), and goes to
the real handler in-process; its answer becomes the HTTP response. DynamoDB is embedded (moto)
unless DYNAMODB_ENDPOINT names one (DynamoDB Local, or AWS); the table is created if missing.
IAM auth is not enforced locally.

    python infra/local_server.py            # PORT and DYNAMODB_ENDPOINT from the environment
"""

from __future__ import annotations

import base64
import contextlib
import importlib
import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

import boto3

from flowsignals.testing import FakeLambdaContext, create_waiter_table, http_api_event
from template_yaml import http_routes

TABLE_NAME = "flowsignals-local"
NOT_FOUND = json.dumps({"message": "Not Found"}).encode()


@dataclass(frozen=True)
class Route:
    method: str
    template: str  # e.g. /runs/{runId}/waiters/{stepKey}
    handler: Callable[[dict[str, Any], Any], dict[str, Any]]

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.template}"

    def match(self, method: str, raw_path: str) -> dict[str, str] | None:
        """The decoded path parameters when the request is this route's; each {name} is one
        (percent-encoded) segment, as API Gateway matches it."""
        if method != self.method:
            return None
        pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(self.template))
        found = re.fullmatch(pattern, raw_path)
        if found is None:
            return None
        return {name: unquote(value) for name, value in found.groupdict().items()}


def load_routes() -> list[Route]:
    routes = []
    for route_key, (module, function) in http_routes().items():
        method, _, template = route_key.partition(" ")
        handler = getattr(importlib.import_module(module), function)
        routes.append(Route(method, template, handler))
    return routes


class _ApiHandler(BaseHTTPRequestHandler):
    routes: ClassVar[list[Route]] = []
    server_version = "flowsignals-local"

    def _answer(self) -> None:
        target = urlsplit(self.path)
        for route in self.routes:
            parameters = route.match(self.command, target.path)
            if parameters is not None:
                break
        else:
            self._send(404, {"Content-Type": "application/json"}, NOT_FOUND)
            return
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else None
        body: str | bytes | None = raw
        if raw is not None:
            with contextlib.suppress(UnicodeDecodeError):
                body = raw.decode(
                    "utf-8"
                )  # text goes as text; anything else base64, as API Gateway
        event = http_api_event(
            route.route_key,
            parameters,
            body=body,
            headers=dict(self.headers.items()),
            raw_query_string=target.query,
        )
        answer = route.handler(event, FakeLambdaContext())
        payload = answer.get("body") or ""
        data = base64.b64decode(payload) if answer.get("isBase64Encoded") else payload.encode()
        self._send(answer["statusCode"], answer.get("headers") or {}, data)

    def _send(self, status: int, headers: dict[str, str], data: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def __getattr__(self, name: str) -> Any:
        # Every method (TRACE, PROPFIND, ...) is routed, as API Gateway does: the template's
        # routes answer theirs, anything else is 404 {"message": "Not Found"}.
        if name.startswith("do_"):
            return self._answer
        raise AttributeError(name)

    def log_message(self, format: str, *args: Any) -> None:
        # The request line only: never bodies (payloads) or headers (tokens).
        sys.stderr.write(f"{self.address_string()} {format % args}\n")


@contextlib.contextmanager
def dynamodb(endpoint: str | None) -> Iterator[str]:
    """The DynamoDB in use for the server's lifetime, with the waiter table in it."""
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    with contextlib.ExitStack() as stack:
        if endpoint:
            os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = endpoint
            description = f"DynamoDB at {endpoint} (table {TABLE_NAME})"
        else:
            from moto import mock_aws

            stack.enter_context(mock_aws())
            description = "embedded DynamoDB (moto, in memory: data lives as long as the server)"
        client = boto3.client("dynamodb")
        if TABLE_NAME not in client.list_tables()["TableNames"]:
            create_waiter_table(client, TABLE_NAME)
        yield description


def main() -> None:
    port = int(os.environ.get("PORT", "3000"))
    os.environ["TABLE_NAME"] = TABLE_NAME
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    try:
        server = ThreadingHTTPServer(("127.0.0.1", port), _ApiHandler)
    except OSError as error:
        sys.exit(f"flowsignals: cannot listen on 127.0.0.1:{port} ({error.strerror}); set PORT")
    with server, dynamodb(os.environ.get("DYNAMODB_ENDPOINT")) as description:
        _ApiHandler.routes = load_routes()
        base = f"http://127.0.0.1:{port}"
        run = "3f2b8c1e-7d4a-4b9e-9c55-0a1b2c3d4e5f"
        print(f"flowsignals HTTP API listening on {base}", flush=True)
        print(f"  routes from template.yaml: {', '.join(r.route_key for r in _ApiHandler.routes)}")
        print(f"  DynamoDB: {description}")
        print("  IAM auth (AWS_IAM on every deployed route) is NOT enforced locally.")
        print("Try:")
        register = '{"signalName": "approve", "timeoutSeconds": 3600}'
        print(
            f"  curl -X PUT {base}/runs/{run}/waiters/manager-approval "
            f"-H 'content-type: application/json' -d '{register}'"
        )
        print(
            f"  curl -X POST {base}/runs/{run}/signals/approve "
            "-H 'Idempotency-Key: click-1' -d '{\"approved\": true}'"
        )
        print(f"  curl {base}/runs/{run}/waiters/manager-approval", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
        print("\nflowsignals: stopped")


if __name__ == "__main__":
    main()
