"""The functions' settings: read once from the variables template.yaml sets, validated with an
error that names the variable, and honoured by the runtime's store."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from conftest import TABLE_NAME, Backend, reset_runtime
from flowsignals import FlowSignalError
from flowsignals.lambdas import runtime
from flowsignals.lambdas.settings import Settings, settings
from flowsignals.testing import FakeLambdaContext, http_api_event
from template_yaml import functions, load_handler, load_template

DAY = 86_400


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("RETENTION_DAYS", "1.5"),
        ("RETENTION_DAYS", "-1"),
        ("RETENTION_DAYS", "seven"),
        ("TABLE_NAME", ""),
        ("EVENT_BUS_NAME", ""),
    ],
)
def test_a_bad_variable_is_named_in_the_error(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv("TABLE_NAME", TABLE_NAME)
    monkeypatch.setenv(variable, value)
    reset_runtime()
    with pytest.raises(FlowSignalError, match=f"^flowsignals is misconfigured: {variable}: "):
        settings()
    reset_runtime()


def test_a_missing_table_name_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TABLE_NAME", raising=False)
    reset_runtime()
    with pytest.raises(FlowSignalError, match="TABLE_NAME: Field required"):
        settings()
    reset_runtime()


def test_a_misconfigured_function_answers_a_500_without_internals(
    fresh_runtime: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RETENTION_DAYS", "1.5")
    route = "GET /runs/{runId}/waiters/{stepKey}"
    answer = load_handler(route)(
        http_api_event(route, {"runId": "r", "stepKey": "s"}), FakeLambdaContext()
    )
    assert answer["statusCode"] == 500
    assert "RETENTION_DAYS" not in answer["body"] and TABLE_NAME not in answer["body"]
    assert json.loads(answer["body"])["code"] == "InternalError"


def test_the_runtime_store_keeps_rows_for_retention_days(
    fresh_runtime: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RETENTION_DAYS", "2")
    deadline = datetime.now(UTC) + timedelta(hours=1)
    waiter = runtime.store().register_waiter("r", "s", "go", deadline)
    assert waiter.expires_at is not None
    item = Backend("moto", runtime.store(), fresh_runtime).raw_item("r", "s")
    assert item is not None
    assert int(item["Ttl"]["N"]) == int(waiter.expires_at.timestamp()) + 2 * DAY


def test_the_template_sets_every_variable_the_settings_read() -> None:
    variables = load_template()["Globals"]["Function"]["Environment"]["Variables"]
    aliases = {field.alias for field in Settings.model_fields.values()}
    assert {"TABLE_NAME", "RETENTION_DAYS"} <= set(variables)
    functions_own = {
        name
        for function in functions().values()
        for name in function["Properties"].get("Environment", {}).get("Variables", {})
    }
    # The notifier's bus, the link functions' secret and base URL and the deliver function's
    # groups claim are theirs alone; LINK_KEY is make run's key (in AWS the secret holds it).
    assert aliases - set(variables) - {"LINK_KEY"} == functions_own
    assert functions_own == {
        "EVENT_BUS_NAME",
        "LINK_SECRET_ID",
        "LINK_BASE_URL",
        "JWT_GROUPS_CLAIM",
    }
