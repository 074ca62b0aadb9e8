"""The signals function's route: ``GET /runs/{runId}/signals`` (the run's early signals)."""

from __future__ import annotations

from http import HTTPStatus

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from flowsignals.lambdas.api.parameters import RunIdPath
from flowsignals.lambdas.http.problems import ok, responses
from flowsignals.lambdas.http.resolver import FunctionApi
from flowsignals.lambdas.runtime import service
from flowsignals.lambdas.schemas import SignalList

router = Router()  # type: ignore[no-untyped-call]  # Powertools leaves it unannotated


@router.get(
    "/runs/<runId>/signals",
    operation_id="listSignals",
    summary="The run's early signals that wait for a step, oldest first",
    responses=responses(HTTPStatus.BAD_REQUEST, ok_model=SignalList),
)
def list_signals(runId: RunIdPath) -> Response[str]:
    return ok(service().list_buffered(runId))


api = FunctionApi(router)
