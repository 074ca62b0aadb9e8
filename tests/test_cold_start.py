"""make bench's cold start runs each interpreter as a Lambda process of template.yaml: its
environment, only its code, layer and runtime to import from, the code as sam build ships it.
(The timings themselves are make bench's, not a test's.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cold_start import (
    ROOT,
    Image,
    build_code,
    handler_modules,
    lambda_environment,
    python_command,
)
from template_yaml import load_template

ENDPOINT = "http://127.0.0.1:8123"


@pytest.fixture
def image(tmp_path: Path) -> Image:
    """An empty image: nothing to import but the standard library."""
    return Image(tmp_path / "task", tmp_path / "layer", tmp_path / "runtime")


def test_the_environment_is_a_lambda_process_on_dynamodb_local(
    image: Image, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_PROFILE", "someone-real")
    environment = lambda_environment(ENDPOINT, "waiters", image)
    # LAMBDA_TASK_ROOT tells libraries (Powertools among them) they run in Lambda.
    assert environment["LAMBDA_TASK_ROOT"] == str(image.task)
    assert environment["PYTHONPATH"].split(":") == [
        str(image.task),
        str(image.layer),
        str(image.runtime),
    ]
    assert environment["AWS_ENDPOINT_URL_DYNAMODB"] == ENDPOINT
    assert environment["TABLE_NAME"] == "waiters"
    assert environment["AWS_REGION"] == environment["AWS_DEFAULT_REGION"]
    assert environment["AWS_ACCESS_KEY_ID"] == environment["AWS_SECRET_ACCESS_KEY"] == "bench"
    assert environment["AWS_LAMBDA_FUNCTION_NAME"]
    assert "Sampled=1" in environment["_X_AMZN_TRACE_ID"]
    # Nothing of the shell's but PATH: no profile, no real credentials.
    assert "AWS_PROFILE" not in environment


def test_the_environment_sets_every_variable_of_the_templates_functions(image: Image) -> None:
    variables = load_template()["Globals"]["Function"]["Environment"]["Variables"]
    assert set(variables) <= set(lambda_environment(ENDPOINT, "waiters", image))


def test_an_interpreter_imports_only_from_the_image(image: Image) -> None:
    """Not from this venv: its test tools (requests, moto, ...) are no Lambda's."""
    probe = "import importlib.util, json; print(json.dumps([importlib.util.find_spec(m) is None"
    probe += " for m in ('boto3', 'flowsignals', 'pytest', 'requests')]))"
    found = subprocess.run(
        python_command("-c", probe),
        env=lambda_environment(ENDPOINT, "waiters", image),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(found) == [True, True, True, True]


def test_the_code_ships_compiled_and_holds_every_handler(tmp_path: Path) -> None:
    """functions/Makefile, as sam build runs it: the package and its bytecode for the runtime,
    so no cold start compiles a module; nothing else (no Makefile, no stale cache)."""
    build_code(tmp_path)
    files = {
        path.relative_to(tmp_path).as_posix() for path in tmp_path.rglob("*") if path.is_file()
    }
    sources = {name for name in files if name.endswith(".py")}
    tag = sys.implementation.cache_tag
    for source in sources:
        folder, _, name = source.rpartition("/")
        assert f"{folder}/__pycache__/{name.removesuffix('.py')}.{tag}.pyc" in files, source
    assert files == sources | {name for name in files if name.endswith(f".{tag}.pyc")}
    for module in handler_modules():
        assert f"{module.replace('.', '/')}.py" in sources


# What a function's process must not load at import: modules only some requests need (the
# approval pages, links, the Secrets Manager key), modules no function needs (the test kit,
# the client, the in-memory store, boto3's resources and transfer manager, the X-Ray SDK:
# tracing is Lambda's own), and Powertools' parts another function uses.
NOT_AT_IMPORT = {
    "flowsignals.lambdas.handlers": {
        # A function's routes load at its first HTTP request: none loads another's.
        "flowsignals.lambdas.api.register",
        "flowsignals.lambdas.api.deliver",
        "flowsignals.lambdas.api.get",
        "flowsignals.lambdas.api.remove",
        "flowsignals.lambdas.api.listing",
        "flowsignals.lambdas.api.signals",
        "flowsignals.lambdas.api.links",
        "flowsignals.lambdas.approvals.routes",
        "flowsignals.lambdas.approvals.pages",
        "flowsignals.lambdas.approvals.service",
        "flowsignals.lambdas.approvals.keys",
        "flowsignals.lambdas.approvals.schemas",
        "flowsignals.core.links",
        "flowsignals.testing",
        "flowsignals.client",
        "flowsignals.backends.memory",
        "boto3",
        "s3transfer",
        "aws_xray_sdk",
        "moto",
        "yaml",
        "requests",
        "aws_lambda_powertools.utilities.batch",
        "aws_lambda_powertools.utilities.parameters",
        "aws_lambda_powertools.event_handler.openapi.swagger_ui",
    },
    "flowsignals.lambdas.notifier": {
        "aws_lambda_powertools.event_handler",
        "flowsignals.lambdas.http.resolver",
        "flowsignals.lambdas.schemas",
        "flowsignals.lambdas.service",
        "flowsignals.core.arguments",
        "flowsignals.backends.dynamodb",
        "boto3",
        "aws_xray_sdk",
    },
}


@pytest.mark.parametrize("module", sorted(NOT_AT_IMPORT))
def test_importing_an_entry_point_loads_only_what_every_request_needs(module: str) -> None:
    """In this venv, where every one of them could be imported (a fresh interpreter, as a
    Lambda process starts, with the template's variables)."""
    assert module in handler_modules()
    probe = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    environment |= {"LAMBDA_TASK_ROOT": str(ROOT / "functions"), "TABLE_NAME": "waiters"}
    environment |= {"AWS_DEFAULT_REGION": "us-east-1"}
    loaded = json.loads(
        subprocess.run(
            [sys.executable, "-c", probe],
            env=environment,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert not NOT_AT_IMPORT[module] & set(loaded)
    assert {"pydantic", "aws_lambda_powertools.logging", "aws_lambda_powertools.metrics"} <= set(
        loaded
    ), "the stack the functions are built on is still there"
