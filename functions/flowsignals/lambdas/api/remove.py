"""The remove function's route: ``DELETE /runs/{runId}/waiters/{stepKey}``."""

from __future__ import annotations

from http import HTTPStatus

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from flowsignals.lambdas.api.parameters import RunIdPath, StepKeyPath
from flowsignals.lambdas.http.problems import responses
from flowsignals.lambdas.http.resolver import FunctionApi
from flowsignals.lambdas.runtime import service

router = Router()  # type: ignore[no-untyped-call]  # Powertools leaves it unannotated


@router.delete(
    "/runs/<runId>/waiters/<stepKey>",
    operation_id="removeWaiter",
    summary="Remove a waiter (removing a missing waiter is not an error)",
    responses={204: {"description": "Removed", "content": {}}, **responses(HTTPStatus.BAD_REQUEST)},
)
def remove_waiter(runId: RunIdPath, stepKey: StepKeyPath) -> Response[str]:
    service().remove(runId, stepKey)
    return Response(204, None, "")


api = FunctionApi(router)
