"""`make run`: the HTTP API of template.yaml on http://127.0.0.1:3000, no Docker, no AWS account.

Routes come from template.yaml's HttpApi events. Each request becomes an API Gateway HTTP API
(payload 2.0) event, as API Gateway builds it (decoded rawPath and pathParameters), and goes to
the real handler in-process; its answer becomes the HTTP response. DynamoDB is embedded (moto)
unless DYNAMODB_ENDPOINT names one (DynamoDB Local, or AWS); the table is created if missing.
Bodies are read however framed (Content-Length or chunked); a malformed request is answered 400
{"message": "Bad Request"}, as API Gateway answers it. IAM auth is not enforced locally; with
LOCAL_AUTHORIZATION set, a stand-in for it answers a request to an IAM route whose Authorization
header is not exactly that value 403 {"message": "Forbidden"}, as API Gateway answers an unsigned
or badly signed one (for tests and fuzzers).
Approval links are signed with a key made at start (LINK_KEY, unless set) and point here.

CORS_ALLOW_ORIGINS (comma-separated; unset or empty: no CORS, the template's default) turns on
CORS as API Gateway does it with the template's CorsConfiguration (methods, headers, max age
read from template.yaml): preflights are answered here, never by a handler, and answers to an
allowed origin carry Access-Control-Allow-Origin.

    python infra/local_server.py    # PORT, DYNAMODB_ENDPOINT, CORS_ALLOW_ORIGINS from the env
"""

from __future__ import annotations

import base64
import contextlib
import importlib
import json
import os
import re
import secrets
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

import boto3

from flowsignals.testing import FakeLambdaContext, create_waiter_table, http_api_event
from template_yaml import (
    apis_with_cors,
    cors_configuration,
    http_routes,
    load_handler,
    route_functions,
)

TABLE_NAME = "flowsignals-local"
NOT_FOUND = json.dumps({"message": "Not Found"}).encode()
APPLICATION_JSON = {"Content-Type": "application/json"}
MAX_BODY = 10 * 1024 * 1024  # API Gateway's payload quota: a larger body is 413 there too
MAX_LINE = 65536  # of a chunk-size or trailer line, as http.server bounds header lines
MAX_TRAILERS = 100

# RFC 9112 §7.1: chunk-size [chunk-ext] CRLF, and the trailer section's field lines.
_TOKEN = rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+"
_QUOTED = rb'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*"'
_EXTENSION = rb"[ \t]*;[ \t]*%s(?:[ \t]*=[ \t]*(?:%s|%s))?" % (_TOKEN, _TOKEN, _QUOTED)
_CHUNK_LINE = re.compile(rb"([0-9A-Fa-f]+)(?:%s)*\r\n" % _EXTENSION)
_TRAILER_LINE = re.compile(_TOKEN + rb":[\t \x21-\x7e\x80-\xff]*\r\n")


class _Unreadable(Exception):
    """The body's framing is malformed (or too large to read): where it ends is unknown."""

    def __init__(self, status: HTTPStatus = HTTPStatus.BAD_REQUEST) -> None:
        super().__init__(status)
        self.status = status


@dataclass(frozen=True)
class Route:
    method: str
    template: str  # e.g. /runs/{runId}/waiters/{stepKey}
    handler: Callable[[dict[str, Any], Any], dict[str, Any]]
    cors: bool = False  # its API has a CorsConfiguration
    iam: bool = False  # its API is the AWS_IAM-authorized HttpApi

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
        # Strict: a segment that is not UTF-8 once decoded is a bad request (never U+FFFD).
        return {name: unquote(value, errors="strict") for name, value in found.groupdict().items()}


@dataclass(frozen=True)
class Cors:
    """CORS as API Gateway answers it for an HTTP API with a CorsConfiguration."""

    origins: frozenset[str]
    methods: str
    headers: str
    expose_headers: str
    max_age: str

    @classmethod
    def from_template(cls, allow_origins: str) -> Cors | None:
        """The template's CorsConfiguration with these origins (as CorsAllowOrigins would be
        given), or None when there are none: the template then has no CORS either."""
        if not allow_origins.strip():
            return None
        configuration = cors_configuration()
        return cls(
            origins=frozenset(origin.strip() for origin in allow_origins.split(",")),
            methods=",".join(configuration["AllowMethods"]),
            headers=",".join(configuration["AllowHeaders"]),
            expose_headers=",".join(configuration["ExposeHeaders"]),
            max_age=str(configuration["MaxAge"]),
        )

    def allowed(self, origin: str | None) -> str | None:
        """The Access-Control-Allow-Origin for a request from ``origin``, if it is allowed."""
        if "*" in self.origins:
            return "*"
        return origin if origin in self.origins else None

    def preflight(self, origin: str | None) -> dict[str, str]:
        """The headers of a preflight's 204: none for an origin that is not allowed."""
        allowed = self.allowed(origin)
        if allowed is None:
            return {}
        return {
            "Access-Control-Allow-Origin": allowed,
            "Access-Control-Allow-Methods": self.methods,
            "Access-Control-Allow-Headers": self.headers,
            "Access-Control-Max-Age": self.max_age,
        }

    def answer(self, origin: str | None) -> dict[str, str]:
        """The headers added to any other answer to ``origin``."""
        allowed = self.allowed(origin)
        if allowed is None:
            return {}
        return {
            "Access-Control-Allow-Origin": allowed,
            "Access-Control-Expose-Headers": self.expose_headers,
        }


def load_routes() -> list[Route]:
    with_cors = {route for api in apis_with_cors() for route in route_functions(api)}
    with_iam = set(route_functions("HttpApi"))
    routes = []
    for route_key, (module, function) in http_routes().items():
        method, _, template = route_key.partition(" ")
        handler = getattr(importlib.import_module(module), function)
        cors, iam = route_key in with_cors, route_key in with_iam
        routes.append(Route(method, template, handler, cors=cors, iam=iam))
    return routes


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # the listen backlog: a burst of clients waits, is not reset
    daemon_threads = True


class _ApiHandler(BaseHTTPRequestHandler):
    routes: ClassVar[list[Route]] = []
    cors: ClassVar[Cors | None] = None
    authorization: ClassVar[str | None] = None  # LOCAL_AUTHORIZATION
    # Held around each handler call: the handlers run as Lambda runs them, one invocation per
    # process at a time (Powertools' resolver keeps the current request in module state), and
    # embedded moto is not atomic under threads (two conditional writes could both succeed).
    # Requests are still read and answered concurrently.
    handler_lock: ClassVar[threading.Lock] = threading.Lock()
    server_version = "flowsignals-local"

    def _answer(self) -> None:
        # The body is read first, whatever the route: unread, it would be taken for the next
        # request, or make the close a reset that loses the answer.
        try:
            raw = self._read_body()
        except _Unreadable as error:
            self.send_error(error.status)
            return
        origin = self.headers.get("Origin")
        target = urlsplit(self.path)
        if (
            self.cors is not None
            and self.command == "OPTIONS"
            and origin is not None
            and "Access-Control-Request-Method" in self.headers
            and not self._on_an_api_without_cors(target.path)
        ):
            self._send(HTTPStatus.NO_CONTENT, self.cors.preflight(origin), b"")
            return
        for route in self.routes:
            try:
                parameters = route.match(self.command, target.path)
            except UnicodeDecodeError:
                self.send_error(HTTPStatus.BAD_REQUEST)
                return
            if parameters is not None:
                break
        else:
            headers = APPLICATION_JSON
            if not self._on_an_api_without_cors(target.path):
                headers = self._with_cors(headers)
            self._send(404, headers, NOT_FOUND)
            return
        signed = self.headers.get("Authorization") == self.authorization
        if route.iam and self.authorization and not signed:
            forbidden = json.dumps({"message": "Forbidden"}).encode()
            self._send(HTTPStatus.FORBIDDEN, self._with_cors(APPLICATION_JSON), forbidden)
            return
        body: str | bytes | None = raw or None
        if raw:
            with contextlib.suppress(UnicodeDecodeError):  # text goes as text; anything else base64
                body = raw.decode("utf-8")
        # Repeated headers arrive joined with ",", as API Gateway joins them, each value
        # without its surrounding spaces and tabs (RFC 9110 §5.5: they are not part of it).
        headers = {
            name.lower(): ",".join(value.strip(" \t") for value in self.headers.get_all(name, []))
            for name in self.headers
        }
        event = http_api_event(
            route.route_key, parameters, body=body, headers=headers, raw_query_string=target.query
        )
        with self.handler_lock:
            answer = route.handler(event, FakeLambdaContext())
        payload = answer.get("body") or ""
        data = base64.b64decode(payload) if answer.get("isBase64Encoded") else payload.encode()
        headers = answer.get("headers") or {}
        self._send(answer["statusCode"], self._with_cors(headers) if route.cors else headers, data)

    def _on_an_api_without_cors(self, path: str) -> bool:
        """Whether the path is one of an API with no CorsConfiguration (the approval pages):
        a preflight there is routed like any request (any other is answered, as the IAM API
        answers every preflight)."""
        for route in self.routes:
            with contextlib.suppress(UnicodeDecodeError):  # routed (and refused) later
                if not route.cors and route.match(route.method, path) is not None:
                    return True
        return False

    def _with_cors(self, headers: dict[str, str]) -> dict[str, str]:
        """An answer's headers as API Gateway sends them with CORS configured: the handler's
        own CORS headers ignored, the configured ones added for an allowed origin."""
        if self.cors is None:
            return headers
        kept = {k: v for k, v in headers.items() if not k.lower().startswith("access-control-")}
        return kept | self.cors.answer(self.headers.get("Origin"))

    def _read_body(self) -> bytes:
        """The body, framed by Content-Length or chunked (RFC 9112 §6.3), or none."""
        codings = self.headers.get_all("Transfer-Encoding")
        lengths = self.headers.get_all("Content-Length")
        if codings:
            if lengths:  # both framings: how requests are smuggled, so refused
                raise _Unreadable
            coding = [name.strip().lower() for name in ",".join(codings).split(",")]
            if coding[-1] != "chunked":
                raise _Unreadable
            if coding != ["chunked"]:  # e.g. gzip under the chunks
                raise _Unreadable(HTTPStatus.NOT_IMPLEMENTED)
            return self._read_chunked()
        if not lengths:
            return b""
        values = {value.strip() for value in ",".join(lengths).split(",")}  # "2, 2" is 2
        text = values.pop()
        if values or not (text.isascii() and text.isdigit()):  # not "abc", "-1", "+2", "2, 3"
            raise _Unreadable
        if (length := int(text)) > MAX_BODY:
            raise _Unreadable(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        body = self.rfile.read(length)
        if len(body) != length:  # the client stopped sending
            raise _Unreadable
        return body

    def _read_chunked(self) -> bytes:
        """The chunks' data; extensions are checked and ignored, trailers too (RFC 9112 §7.1)."""
        body = bytearray()
        while True:
            line = _CHUNK_LINE.fullmatch(self.rfile.readline(MAX_LINE + 1))
            if line is None:
                raise _Unreadable
            if (size := int(line[1], 16)) == 0:
                break
            if len(body) + size > MAX_BODY:
                raise _Unreadable(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
            chunk = self.rfile.read(size)
            if len(chunk) != size or self.rfile.read(2) != b"\r\n":
                raise _Unreadable
            body += chunk
        for _ in range(MAX_TRAILERS + 1):  # read past, not merged into the headers
            field = self.rfile.readline(MAX_LINE + 1)
            if field == b"\r\n":
                return bytes(body)
            if not _TRAILER_LINE.fullmatch(field):
                break
        raise _Unreadable

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Any malformed request (this module's or http.server's) is answered as API Gateway
        answers it, {"message": "Bad Request"}, and the connection closed."""
        self.log_error("code %d, message %s", code, message or HTTPStatus(code).phrase)
        data = json.dumps({"message": HTTPStatus(code).phrase}).encode()
        self._send(code, {"Content-Type": "application/json", "Connection": "close"}, data)

    def _send(self, status: int, headers: dict[str, str], data: bytes) -> None:
        self.send_response(status)
        length = str(len(data))
        for name, value in headers.items():
            if name.lower() != "content-length":
                self.send_header(name, value)
            elif self.command == "HEAD":
                length = value  # the length GET's body has, as the handler tells it
        self.send_header("Content-Length", length)
        self.end_headers()
        if self.command != "HEAD":  # a HEAD answer has no body (RFC 9110 §9.3.2)
            self.wfile.write(data)

    def __getattr__(self, name: str) -> Any:
        # Every method (TRACE, PROPFIND, ...) is routed, as API Gateway does: the template's
        # routes answer theirs, anything else is 404 {"message": "Not Found"}.
        if name.startswith("do_"):
            return self._answer
        raise AttributeError(name)

    def log_message(self, format: str, *args: Any) -> None:
        # The request line only, its credentials redacted: never bodies (payloads) or headers.
        sys.stderr.write(f"{self.address_string()} {redacted(format % args)}\n")


# Where a request line carries a credential: an approval link's token is the path segment
# after /approvals/, and any query value may be one (a page token, a link token pasted there).
_LINK_TOKEN = re.compile(r"(/approvals(?:/|%2f))[^/?#\s\"']+", re.IGNORECASE)
_QUERY = re.compile(r"\?[^#\s\"']*")
_QUERY_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,31}")
_REDACTED = "<redacted>"


def redacted(line: str) -> str:
    """A log line (a request line, or a message quoting one) with every link token and every
    query value replaced by ``<redacted>``; a query's names stay, to say what was asked."""

    def names_only(query: re.Match[str]) -> str:
        names = (part.partition("=")[0] for part in query[0][1:].split("&"))
        return "?" + "&".join(
            f"{name}={_REDACTED}" if _QUERY_NAME.fullmatch(name) else _REDACTED for name in names
        )

    return _QUERY.sub(names_only, _LINK_TOKEN.sub(rf"\1{_REDACTED}", line))


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


def mint_links(event: dict[str, Any]) -> dict[str, Any]:
    """Links minted as a state machine mints them: the links function, invoked directly."""
    links: dict[str, Any] = load_handler("LinksFunction")(event, FakeLambdaContext())
    return links


def main() -> None:
    port = int(os.environ.get("PORT", "3000"))
    base = f"http://127.0.0.1:{port}"
    os.environ["TABLE_NAME"] = TABLE_NAME
    # Links are signed with a key of this server's own, and point at it.
    key = {"keyId": "local", "key": secrets.token_urlsafe(48)}
    os.environ.setdefault("LINK_KEY", json.dumps(key))
    os.environ.setdefault("LINK_BASE_URL", base)
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    try:
        server = _Server(("127.0.0.1", port), _ApiHandler)
    except OSError as error:
        sys.exit(f"flowsignals: cannot listen on 127.0.0.1:{port} ({error.strerror}); set PORT")
    endpoint = os.environ.get("DYNAMODB_ENDPOINT")
    with server, dynamodb(endpoint) as description:
        _ApiHandler.routes = load_routes()
        _ApiHandler.cors = cors = Cors.from_template(os.environ.get("CORS_ALLOW_ORIGINS", ""))
        _ApiHandler.authorization = os.environ.get("LOCAL_AUTHORIZATION") or None
        run = "3f2b8c1e-7d4a-4b9e-9c55-0a1b2c3d4e5f"
        print(f"flowsignals HTTP API listening on {base}", flush=True)
        print(f"  routes from template.yaml: {', '.join(r.route_key for r in _ApiHandler.routes)}")
        print(f"  DynamoDB: {description}")
        stand_in = " (a stand-in: LOCAL_AUTHORIZATION)" if _ApiHandler.authorization else ""
        print(f"  IAM auth (AWS_IAM on every deployed route) is NOT enforced locally{stand_in}.")
        if cors is None:
            print("  CORS: off (CORS_ALLOW_ORIGINS=https://dashboard.example.com,... turns it on)")
        else:
            print(
                f"  CORS: for {', '.join(sorted(cors.origins))} (template.yaml's CorsConfiguration)"
            )
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
        print(f"  curl {base}/runs/{run}/waiters/manager-approval")
        links = mint_links({"runId": run, "signalName": "approve", "approver": "you@example.com"})
        print("Or, after the PUT above, open this approval link in a browser and click:")
        print(f"  {links['links']['approve']}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
        print("\nflowsignals: stopped")


if __name__ == "__main__":
    main()
