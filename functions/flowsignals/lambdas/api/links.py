"""The links function's route: ``POST /runs/{runId}/signals/{signalName}/links`` mints
approval links."""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body

from flowsignals.lambdas.api.parameters import RunIdPath, SignalNamePath
from flowsignals.lambdas.approvals.schemas import LinksView, MintLinksBody
from flowsignals.lambdas.http.problems import ok, responses
from flowsignals.lambdas.http.resolver import FunctionApi
from flowsignals.lambdas.runtime import approvals, link_base_url

router = Router()  # type: ignore[no-untyped-call]  # Powertools leaves it unannotated


@router.post(
    "/runs/<runId>/signals/<signalName>/links",
    operation_id="mintLinks",
    summary="Mint approval links: one URL per action, for a person without an AWS identity",
    description=(
        "Each URL opens a confirmation page (GET and HEAD change nothing); its button delivers"
        ' the action once. Default actions: approve (payload {"approved": true}) and reject'
        " (failure Rejected). A waiter need not exist yet."
    ),
    responses=responses(
        HTTPStatus.BAD_REQUEST, HTTPStatus.REQUEST_ENTITY_TOO_LARGE, ok_model=LinksView
    ),
)
def mint_links(
    runId: RunIdPath,
    signalName: SignalNamePath,
    # Every field has a default: no body, {} or null mints the default links.
    body: Annotated[MintLinksBody | None, Body()] = None,
) -> Response[str]:
    return ok(approvals().mint(runId, signalName, body or MintLinksBody(), link_base_url()))


api = FunctionApi(router)
