"""The get function's route: ``GET /runs/{runId}/waiters/{stepKey}``."""

from __future__ import annotations

from http import HTTPStatus

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from flowsignals.lambdas.api.parameters import RunIdPath, StepKeyPath
from flowsignals.lambdas.http.problems import ok, problem, responses
from flowsignals.lambdas.http.resolver import FunctionApi
from flowsignals.lambdas.runtime import service
from flowsignals.lambdas.schemas import WaiterView

router = Router()  # type: ignore[no-untyped-call]  # Powertools leaves it unannotated


@router.get(
    "/runs/<runId>/waiters/<stepKey>",
    operation_id="getWaiter",
    summary="Read one waiter",
    responses=responses(HTTPStatus.NOT_FOUND, HTTPStatus.BAD_REQUEST, ok_model=WaiterView),
)
def get_waiter(runId: RunIdPath, stepKey: StepKeyPath) -> Response[str]:
    view = service().get(runId, stepKey)
    if view is None:
        return problem(
            HTTPStatus.NOT_FOUND, "NotFound", "The run has no waiter with this step key."
        )
    return ok(view)


api = FunctionApi(router)
