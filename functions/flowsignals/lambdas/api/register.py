"""The register function's route: ``PUT /runs/{runId}/waiters/{stepKey}``."""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body

from flowsignals.lambdas.api.parameters import RunIdPath, StepKeyPath
from flowsignals.lambdas.http.problems import link, ok, responses
from flowsignals.lambdas.http.resolver import FunctionApi
from flowsignals.lambdas.runtime import service
from flowsignals.lambdas.schemas import RegisterWaiterBody, RegisterWaiterEvent, WaiterView

router = Router()  # type: ignore[no-untyped-call]  # Powertools leaves it unannotated


@router.put(
    "/runs/<runId>/waiters/<stepKey>",
    summary="Register (or update) the waiter of a step",
    operation_id="registerWaiter",
    responses=responses(
        HTTPStatus.BAD_REQUEST,
        HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        ok_model=WaiterView,
        links={
            name: link(operation, runId="$response.body#/runId", **{key: f"$response.body#/{key}"})
            for name, operation, key in (
                ("GetWaiter", "getWaiter", "stepKey"),
                ("RemoveWaiter", "removeWaiter", "stepKey"),
                ("DeliverSignal", "deliverSignal", "signalName"),
                ("DeliverFailure", "deliverFailure", "signalName"),
                ("MintLinks", "mintLinks", "signalName"),
            )
        }
        | {"ListWaiters": link("listWaiters", runId="$response.body#/runId")},
    ),
)
def register_waiter(
    runId: RunIdPath, stepKey: StepKeyPath, body: Annotated[RegisterWaiterBody, Body()]
) -> Response[str]:
    request = RegisterWaiterEvent(runId=runId, stepKey=stepKey, **body.model_dump())
    # A caller of the API may neither hand a task token in nor take a stored one away.
    return ok(service().register(request, keep_task_token=True))


api = FunctionApi(router)
