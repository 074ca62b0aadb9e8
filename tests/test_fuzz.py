"""Fuzzing: schemathesis generates requests from the committed OpenAPI document, valid and
invalid, and sends them to `make run`'s server (the real handlers) with a stand-in for the IAM
authorizer; then it walks the document's links (register, then read, deliver, remove) as a
state machine. Every check runs: no 5xx; every answer as documented (status, content type,
body, headers, time); valid requests accepted and invalid ones refused; auth enforced; a
removed waiter gone and a registered one there. Derandomized, so `make test` meets the same
cases each run (about 15 s); raise max_examples or drop derandomize to explore."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.core.parameters import ParameterLocation

from conftest import running_local_server
from openapi import DOCUMENT

# What the stand-in authorizer takes as a valid signature; anything else is API Gateway's 403.
AUTHORIZATION = f"AWS4-HMAC-SHA256 stand-in-{secrets.token_hex(8)}"
SETTINGS = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)

schema = schemathesis.openapi.from_path(DOCUMENT)
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
    # The signature comes from the stand-in (below), never a generated one.
    with_security_parameters=False,
)
schema.config.phases.update(phases=["examples", "coverage", "fuzzing", "stateful"])
# The walk sends valid requests only (the phases before it send invalid ones).
schema.config.phases.stateful.generation.update(modes=[GenerationMode.POSITIVE])
# Every check, max_response_time too (a generous bound: the machine may be busy).
schema.config.checks.update(max_response_time=10.0)
# A valid request may also meet a waiter that stopped waiting (410); an invalid one may be
# refused for its size (413). Both as documented.
acceptance = schema.config.checks.positive_data_acceptance
acceptance.expected_statuses = [*acceptance.expected_statuses, "410"]
rejection = schema.config.checks.negative_data_rejection
rejection.expected_statuses = [*rejection.expected_statuses, "413"]


@schema.auth()
class StandInSignature:
    def get(self, case: schemathesis.Case, context: Any) -> str:
        return AUTHORIZATION

    def set(self, case: schemathesis.Case, data: str, context: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": data}


@schema.hook
def map_case(context: Any, case: schemathesis.Case) -> schemathesis.Case:
    """A nextToken is opaque: only one this API issued is valid, which no schema can say, so a
    generated valid-looking one is left out (the state machine passes real ones on)."""
    query = case.meta.components.get(ParameterLocation.QUERY) if case.meta else None
    if case.query and "nextToken" in case.query and query and query.mode.is_positive:
        case.query = {name: value for name, value in case.query.items() if name != "nextToken"}
    return case


@pytest.fixture(scope="module")
def api_url() -> Iterator[str]:
    with running_local_server(LOCAL_AUTHORIZATION=AUTHORIZATION) as url:
        yield url


@schema.parametrize()
@SETTINGS
def test_every_answer_conforms_and_none_is_a_5xx(case: schemathesis.Case, api_url: str) -> None:
    case.call_and_validate(base_url=api_url)


def test_the_linked_operations_keep_their_promises(api_url: str) -> None:
    # The approval pages take a token only a minted link's URL holds (the fuzzing covers their
    # refusals); left in, their random 403s would be the walk's only entry point.
    pages_left_out = schema.exclude(path_regex="^/approvals/")

    class Workflow(pages_left_out.as_state_machine()):
        def setup(self) -> None:
            self.runs: set[str] = set()

        def before_call(self, case: schemathesis.Case) -> None:
            # Each walk starts on runs of its own (a linked step keeps its run), so what earlier
            # walks stored never changes its answers: Hypothesis replays a walk and expects the
            # same ones.
            parameters = case.path_parameters or {}
            if "runId" in parameters and parameters["runId"] not in self.runs:
                fresh = str(uuid.uuid4())
                self.runs.add(fresh)
                # In place: schemathesis then checks the one value replaced, not the others
                # in the percent-encoded form they have by now.
                parameters["runId"] = fresh

        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"base_url": api_url}

    Workflow.run(settings=settings(SETTINGS, max_examples=25, stateful_step_count=8))
