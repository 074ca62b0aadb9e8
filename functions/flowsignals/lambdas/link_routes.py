"""The route that mints approval links. Only the links function's requests need it (and the
models of its body), so it joins the API's resolver when that module is first imported: at
the links function's first HTTP request (handlers.py), or where the whole API is described
(the OpenAPI document, the local server)."""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.utilities.typing import LambdaContext

from flowsignals.lambdas import routes
from flowsignals.lambdas.link_schemas import LinksView, MintLinksBody
from flowsignals.lambdas.problems import ok, responses
from flowsignals.lambdas.routes import RunIdPath, SignalNamePath
from flowsignals.lambdas.runtime import approvals, link_base_url

router = Router()  # type: ignore[no-untyped-call]  # Powertools leaves it unannotated


@router.post(
    "/runs/<runId>/signals/<signalName>/links",
    summary="Mint approval links: one URL per action, for a person without an AWS identity",
    description=(
        "Each URL opens a confirmation page (GET and HEAD change nothing); its button delivers"
        ' the action once. Default actions: approve (payload {"approved": true}) and reject'
        " (failure Rejected). A waiter need not exist yet."
    ),
    responses=responses(HTTPStatus.BAD_REQUEST, ok_model=LinksView),
)
def mint_links(
    runId: RunIdPath, signalName: SignalNamePath, body: Annotated[MintLinksBody, Body()]
) -> Response[str]:
    return ok(approvals().mint(runId, signalName, body, link_base_url()))


routes.app.include_router(router)
app = routes.app  # the resolver this route joined


def handle(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Answer an API Gateway HTTP API event, this route included."""
    return routes.handle(event, context)
