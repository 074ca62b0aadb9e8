"""A stub HTTP server for the client's tests: answers from a script, records each request.

An answer is ``(status, headers, body)``: a ``bytes`` body is sent as it is, anything else as
JSON, ``application/problem+json`` from 400 on, else ``application/json`` (as API Gateway's
own ``{"message": ...}`` too), unless the headers name a Content-Type. ``DROP`` reads the
request and closes the connection without answering (an answer lost on the way back);
``HANG`` does so after a second (longer than a client's short timeout)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = tuple[int, dict[str, str], Any]
DROP: Answer = (0, {}, None)
HANG: Answer = (-1, {}, 1.0)


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Stub:
    """The script (its last answer repeats) and the requests received, in order."""

    answers: list[Answer]
    requests: list[Recorded] = field(default_factory=list)
    url: str = ""


def problem(status: int, code: str, detail: str, **extra: Any) -> Any:
    body = {"type": "about:blank", "title": code, "status": status, "detail": detail}
    return body | {"code": code, **extra}


UNAVAILABLE: Answer = (503, {"Retry-After": "0"}, problem(503, "ServiceUnavailable", "busy"))
DELIVERED: Answer = (
    200,
    {},
    {
        "delivered": True,
        "stepKey": "s",
        "deliveredAt": "2026-01-02T03:04:05.678Z",
        "replayed": False,
    },
)
WAITER = {
    "runId": "run", "stepKey": "s", "signalName": "go", "createdAt": "2026-01-02T03:04:05.678Z",
    "expiresAt": None, "deliveredAt": None, "payload": None, "failure": None,
    "deliveredBy": None, "state": "Waiting", "deciders": [], "quorum": 1, "approvals": [],
}  # fmt: skip


@contextlib.contextmanager
def stub_server(*answers: Answer) -> Iterator[Stub]:
    state = Stub(answers=list(answers) or [DELIVERED])

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            state.requests.append(
                Recorded(self.command, self.path, dict(self.headers), self.rfile.read(length))
            )
            index = min(len(state.requests), len(state.answers)) - 1
            status, headers, body = state.answers[index]
            if status <= 0:  # DROP, HANG
                time.sleep(body or 0)
                self.close_connection = True
                return
            raw = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            if "Content-Type" not in headers and not isinstance(body, bytes):
                gateway = isinstance(body, dict) and set(body) == {"message"}
                problem = status >= 400 and not gateway
                kind = "application/problem+json" if problem else "application/json"
                self.send_header("Content-Type", kind)
            if status != 204:
                self.send_header("Content-Length", str(len(raw)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            if status != 204:
                self.wfile.write(raw)

        do_GET = do_PUT = do_POST = do_DELETE = _answer

        def log_message(self, *args: Any) -> None:
            pass

    with serving(Handler) as url:
        state.url = url
        yield state


@contextlib.contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """``handler`` served on a free local port, in a thread; yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    # A short poll: shutdown() waits for it, once per test.
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
