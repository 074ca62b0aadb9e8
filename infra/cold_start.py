"""Cold start as Lambda pays it, against a bare boto3 handler: the import of every entry point
template.yaml names, the first request of a fresh process (import, settings, client, one call
on DynamoDB Local), the warm cost of a request with DynamoDB stubbed, the process's memory,
and the zipped code and layer.

Every interpreter runs as a function's process would (``lambda_environment``): Lambda's
variables (``LAMBDA_TASK_ROOT`` among them: libraries such as Powertools, and the X-Ray SDK
if one loaded it, behave as in Lambda), and only the code (as sam build ships it, compiled
by functions/Makefile), the layer and the runtime's boto3 to import from (``build_image``).
Rows run interleaved (A, B, A, B, ...) and report medians, so a machine busy with other work
slows every row alike.

    python infra/cold_start.py importtime [MODULE] [RUNS]   # where an import's time goes
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import zipfile
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple
from uuid import uuid4

import template_yaml
from flowsignals import DynamoDBFlowSignalStore
from flowsignals.testing import http_api_event

ROOT = Path(__file__).resolve().parent.parent
CHILD = Path(__file__).resolve().parent / "cold_start_child.py"
LAYER = ROOT / "infra" / "layer"
# A Lambda process imports from its code, the layer and the runtime's own boto3 (these
# packages, at constraints.txt's versions), not from this venv, whose test tools (requests,
# moto, ...) would change what some libraries do at import. Installed for this machine's
# platform.
IMAGE = ROOT / ".cache" / "lambda-image"
RUNTIME_PACKAGES = (
    "boto3",
    "botocore",
    "s3transfer",
    "jmespath",
    "urllib3",
    "python-dateutil",
    "six",
)
BASELINE = "boto3"
DELIVER_ROUTE = "POST /runs/{runId}/signals/{signalName}"
# The targets: multiples of the bare boto3 baseline, and our code's warm time.
FIRST_REQUEST_TARGET = 1.6
IMPORT_TARGET = 1.8
WARM_OWN_CODE_TARGET_MS = 0.5


class Image(NamedTuple):
    """What a function's process can import: /var/task, /opt/python, the runtime's boto3."""

    task: Path
    layer: Path
    runtime: Path


def _pip_install(target: Path, *arguments: str) -> None:
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target"]
    done = subprocess.run([*command, str(target), *arguments], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"pip install into {target} failed:\n{done.stderr}")


def build_image() -> Image:
    """IMAGE: the layer and the runtime's packages (installed again when a pin changes) and
    a fresh build of the code as sam build ships it (functions/Makefile)."""
    image = Image(IMAGE / "task", IMAGE / "layer", IMAGE / "runtime")
    requirements = LAYER / "requirements.txt"
    constraints = ROOT / "constraints.txt"
    stamp = IMAGE / "installed-from.txt"
    pins = requirements.read_text() + constraints.read_text()
    if not stamp.is_file() or stamp.read_text() != pins:
        shutil.rmtree(IMAGE, ignore_errors=True)
        _pip_install(image.layer, "-r", str(requirements))
        _pip_install(image.runtime, "-c", str(constraints), *RUNTIME_PACKAGES)
        stamp.write_text(pins)
    shutil.rmtree(image.task, ignore_errors=True)
    build_code(image.task)
    return image


def lambda_environment(endpoint: str, table: str, image: Image) -> dict[str, str]:
    """What the python3.13 runtime sets for a function of template.yaml (fake credentials,
    DynamoDB at ``endpoint``), and of this shell's environment only PATH."""
    name = "flowsignals-bench"
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": os.pathsep.join(str(path) for path in image),
        # /var/task is read-only: only the .pyc files the build ships are ever used.
        "PYTHONDONTWRITEBYTECODE": "1",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "LAMBDA_TASK_ROOT": str(image.task),
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_SESSION_TOKEN": "bench",
        # Tracing: Active, and this trace sampled, as Lambda hands it to a traced function.
        "_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;"
        "Sampled=1",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "AWS_ENDPOINT_URL_DYNAMODB": endpoint,
        # template.yaml's Globals.Function.Environment.
        "TABLE_NAME": table,
        "RETENTION_DAYS": "7",
        "POWERTOOLS_SERVICE_NAME": "flowsignals",
        "POWERTOOLS_METRICS_NAMESPACE": "FlowSignals",
        "POWERTOOLS_LOG_LEVEL": "INFO",
        "PYDANTIC_DISABLE_PLUGINS": "__all__",
    }


def python_command(*arguments: str) -> list[str]:
    """This Python without its site-packages (-S): the image's PYTHONPATH is all it sees."""
    return [sys.executable, "-S", *arguments]


def handler_modules() -> list[str]:
    """The module of every Handler in template.yaml, in the template's order."""
    handlers = (f["Properties"]["Handler"] for f in template_yaml.functions().values())
    return list(dict.fromkeys(handler.rpartition(".")[0] for handler in handlers))


def run_child(environment: dict[str, str], *arguments: str, event: Any = None) -> dict[str, Any]:
    """The JSON result of one fresh interpreter of cold_start_child.py."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        done = subprocess.run(
            python_command(str(CHILD), *arguments[:2], out.name, *arguments[2:]),
            input=None if event is None else json.dumps(event),
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        if done.returncode != 0:
            raise RuntimeError(f"cold_start_child.py {' '.join(arguments)}:\n{done.stderr}")
        result: dict[str, Any] = json.loads(Path(out.name).read_text())
        return result


def deliver_event(store: DynamoDBFlowSignalStore) -> dict[str, Any]:
    """An HTTP API delivery to a waiter registered on a fresh run (it will be delivered)."""
    run = str(uuid4())
    store.register_waiter(run, "approve-step", "approve")
    return http_api_event(
        DELIVER_ROUTE, {"runId": run, "signalName": "approve"}, body='{"approved": true}'
    )


def cold_rows(
    environment: dict[str, str], store: DynamoDBFlowSignalStore, runs: int
) -> dict[str, list[dict[str, Any]]]:
    """Each row's child results, the rows interleaved run by run."""
    imports = [BASELINE, *handler_modules()]
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for _ in range(runs):
        for module in imports:
            rows[f"import {module}"].append(run_child(environment, "import", module))
        event = deliver_event(store)
        for handler in ("minimal", "deliver"):
            result = run_child(environment, "first", handler, event=event)
            if result["status"] != 200:
                raise RuntimeError(f"first request of {handler}: status {result['status']}")
            rows[f"first {handler}"].append(result)
    return rows


def percentile(samples: list[float], q: float) -> float:
    """The nearest-rank percentile: the smallest sample with at least q% at or below it."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def zipped_bytes(root: Path, files: Iterable[Path]) -> int:
    with tempfile.TemporaryFile() as archive:
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
            for path in files:
                bundle.write(path, path.relative_to(root))
        return archive.tell()


def build_code(target: Path) -> None:
    """A function's code as sam build ships it: functions/Makefile's recipe (the package,
    compiled ahead) with this Python, into ``target``."""
    recipe = ["make", "-s", "-C", str(ROOT / "functions"), "build-DeliverFunction"]
    recipe += [f"ARTIFACTS_DIR={target}", f"PYTHON={sys.executable}"]
    done = subprocess.run(recipe, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"functions/Makefile failed:\n{done.stderr}")


def layer_zip_bytes(image: Image) -> tuple[int, str]:
    """The layer's zip as sam build makes it (infra/layer/Makefile: arm64 wheels for Python
    3.13); where pip cannot fetch those, the image's copy for this platform, so labelled."""
    with tempfile.TemporaryDirectory() as artifacts:
        # The recipe's python3 must be this Python: it compiles the .pyc files for its version.
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        built = subprocess.run(
            [
                "make",
                "-s",
                "-C",
                str(LAYER),
                "build-DependenciesLayer",
                f"ARTIFACTS_DIR={artifacts}",
            ],
            env={**os.environ, "PATH": path},
            capture_output=True,
        )
        if built.returncode == 0:
            root = Path(artifacts)
            size = zipped_bytes(root, (p for p in root.rglob("*") if p.is_file()))
            return size, "arm64 wheels, as infra/layer/Makefile builds it"
    files = (p for p in image.layer.rglob("*") if p.is_file())
    return zipped_bytes(image.layer, files), f"APPROXIMATION: no arm64 wheels; {sys.platform}'s"


def _row(name: str, ms: float, ratio: float | None = None, target: float | None = None) -> str:
    line = f"  {name:58} {ms:7.1f} ms"
    if ratio is not None:
        line += f"  {ratio:.2f}x"
    if ratio is not None and target is not None:
        line += f"  ≤ {target}x {'ok' if ratio <= target else 'OVER'}"
    return line


def report(
    endpoint: str, table: str, store: DynamoDBFlowSignalStore, runs: int = 15, warm: int = 3000
) -> str:
    image = build_image()
    environment = lambda_environment(endpoint, table, image)
    rows = cold_rows(environment, store, runs)

    def median(row: str, key: str) -> float:
        return float(statistics.median(result[key] for result in rows[row]))

    lines = [
        f"cold start as Lambda pays it: fresh interpreters in a Lambda-like environment"
        f" (LAMBDA_TASK_ROOT set, code as functions/Makefile ships it); medians of {runs},"
        " rows interleaved",
        f"  {'':58} {'median':>10}  ratio  target",
    ]
    baseline = median(f"import {BASELINE}", "seconds") * 1000
    lines.append(_row(f"import {BASELINE} (the baseline)", baseline, 1.0))
    for module in handler_modules():
        ms = median(f"import {module}", "seconds") * 1000
        lines.append(_row(f"import {module}", ms, ms / baseline, IMPORT_TARGET))
    lines.append(
        "  first request of a process (import, client, the request on DynamoDB Local; init:"
        " up to the handler's first call):"
    )
    minimal = median("first minimal", "seconds") * 1000
    for handler, name in (
        ("minimal", "minimal boto3 handler: 1 conditional UpdateItem"),
        ("deliver", "deliver_handler: an HTTP API delivery, Query + UpdateItem"),
    ):
        ms = median(f"first {handler}", "seconds") * 1000
        target = None if handler == "minimal" else FIRST_REQUEST_TARGET
        init = median(f"first {handler}", "init_seconds") * 1000
        rss = median(f"first {handler}", "rss_kb") / 1024
        lines.append(
            f"{_row(name, ms, ms / minimal, target):95} init {init:5.1f} ms  RSS {rss:5.1f} MB"
        )

    event = deliver_event(store)
    lines.append(
        f"warm requests, {warm} after the first in one process (DynamoDB answered at botocore's"
        " HTTP layer: serializing, signing and parsing still run); own: the request's time"
        " outside its AWS calls (the handler, Powertools, our code):"
    )
    for handler in ("minimal", "deliver"):
        result = run_child(environment, "warm", handler, str(warm), event=event)
        samples = [seconds * 1000 for seconds in result["samples"]]
        own = [seconds * 1000 for seconds in result["own_samples"]]
        verdict = ""
        if handler == "deliver":
            ok = percentile(own, 50) <= WARM_OWN_CODE_TARGET_MS
            verdict = f"  own p50 ≤ {WARM_OWN_CODE_TARGET_MS} ms {'ok' if ok else 'OVER'}"
        lines.append(
            f"  {handler:30} p50 {percentile(samples, 50):5.2f} ms  p99"
            f" {percentile(samples, 99):5.2f} ms   own p50 {percentile(own, 50):5.2f} ms"
            f"  p99 {percentile(own, 99):5.2f} ms{verdict}"
        )

    layer, how = layer_zip_bytes(image)
    code = zipped_bytes(image.task, (p for p in image.task.rglob("*") if p.is_file()))
    lines.append("zipped (deflate):")
    lines.append(f"  {'functions/ (CodeUri, as sam build copies it)':58} {code / 1024:7.0f} KB")
    lines.append(f"  {'DependenciesLayer':58} {layer / 1024:7.0f} KB  ({how})")
    return "\n".join(lines)


_IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)$")


def import_costs(module: str, runs: int) -> dict[str, tuple[float, float, str]]:
    """``python -X importtime`` in the Lambda-like environment, ``runs`` times: each module's
    median self and cumulative ms, and the first-party module that imported it first."""
    environment = lambda_environment("http://127.0.0.1:9", "bench", build_image())
    own: dict[str, list[float]] = defaultdict(list)
    cumulative: dict[str, list[float]] = defaultdict(list)
    importer: dict[str, str] = {}
    for _ in range(runs):
        trace = subprocess.run(
            python_command("-X", "importtime", "-c", f"import {module}"),
            env=environment,
            capture_output=True,
            text=True,
            check=True,
        ).stderr
        stack: list[tuple[int, str]] = []  # (depth, name) of the modules importing the next
        # Children print before their parent: read bottom-up to see parents first.
        for line in reversed(trace.splitlines()):
            match = _IMPORT_LINE.match(line)
            if match is None:
                continue
            depth, name = len(match[3]) // 2, match[4]
            while stack and stack[-1][0] >= depth:
                stack.pop()
            first_party = [n for _, n in stack if n.startswith("flowsignals")]
            importer.setdefault(name, first_party[-1] if first_party else "-")
            stack.append((depth, name))
            own[name].append(int(match[1]) / 1000)
            cumulative[name].append(int(match[2]) / 1000)
    return {
        name: (statistics.median(own[name]), statistics.median(cumulative[name]), importer[name])
        for name in own
    }


def importtime_report(module: str, runs: int, top: int = 30) -> str:
    costs = import_costs(module, runs)
    total = costs[module][1]
    lines = [f"import {module}: {total:.1f} ms (median of {runs}, -X importtime inflates it)"]
    for title, key in (("self", 0), ("cumulative", 1)):
        lines.append(f"top {top} by {title} ms   (self, cumulative, first imported under)")
        ranked = sorted(costs.items(), key=lambda item: item[1][key], reverse=True)[:top]
        for name, (own, cumulative, importer) in ranked:
            lines.append(f"  {name:60} {own:6.1f} {cumulative:7.1f}  {importer}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    trace = commands.add_parser("importtime", help="where an import's time goes")
    trace.add_argument("module", nargs="?", default="flowsignals.lambdas.handlers")
    trace.add_argument("runs", nargs="?", type=int, default=5)
    arguments = parser.parse_args()
    print(importtime_report(arguments.module, arguments.runs))


if __name__ == "__main__":
    main()
