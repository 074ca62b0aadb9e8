"""``python infra/dynamodb_local.py serve``: however it is stopped, its Java server stops too."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import dynamodb_local
from conftest import dynamodb_local_unavailable

SCRIPT = Path(dynamodb_local.__file__)

pytestmark = pytest.mark.dynamodb_local


def children(parent: int) -> list[int]:
    """The processes whose parent is ``parent`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            # pid (comm) state ppid ...: comm may hold spaces, so split after its ")".
            fields = stat.read_text().rpartition(")")[2].split()
            if int(fields[1]) == parent:
                found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    """Running, or stopped but not yet ended: a zombie has ended."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_until_answering(port: int, serve: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if serve.poll() is not None:
            pytest.fail(f"serve exited with {serve.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    pytest.fail(f"serve did not answer on port {port} within 60 s")


@pytest.mark.parametrize("name", ["SIGTERM", "SIGINT", "SIGHUP"])
def test_serve_stopped_by_a_signal_leaves_no_java_running(name: str) -> None:
    port = dynamodb_local.free_port()
    try:
        dynamodb_local.command(port)
    except dynamodb_local.DynamoDBLocalUnavailable as error:
        dynamodb_local_unavailable(error)
    serve = subprocess.Popen([sys.executable, str(SCRIPT), "serve", str(port)], text=True)
    java: list[int] = []
    try:
        wait_until_answering(port, serve)
        java = children(serve.pid)
        assert len(java) == 1, java
        serve.send_signal(getattr(signal, name))
        serve.wait(timeout=20)
        deadline = time.monotonic() + 5
        while alive(java[0]) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(java[0]), f"java ({java[0]}) still runs after serve got {name}"
    finally:
        serve.kill()
        serve.wait()
        for pid in java:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
