"""The list function's route: ``GET /runs/{runId}/waiters``."""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from flowsignals.core.values import DEFAULT_PAGE_SIZE, PageLimitText, SignalName
from flowsignals.lambdas.api.parameters import RunIdPath
from flowsignals.lambdas.http.problems import ok, responses
from flowsignals.lambdas.http.resolver import FunctionApi
from flowsignals.lambdas.runtime import service
from flowsignals.lambdas.schemas import NextToken, WaiterPage

router = Router()  # type: ignore[no-untyped-call]  # Powertools leaves it unannotated


@router.get(
    "/runs/<runId>/waiters",
    operation_id="listWaiters",
    summary="The waiters of a run (or of one signal), oldest first, a page at a time",
    description=(
        "With signalName, only the waiters of that signal name, read from the table's"
        " global index RunId-SignalName-index: eventually consistent, so a waiter registered"
        " or renamed a moment ago may be missing (never listed under a name it no longer"
        " has). Without it, every waiter of the run, strongly consistent."
    ),
    responses=responses(HTTPStatus.BAD_REQUEST, ok_model=WaiterPage),
)
def list_waiters(
    runId: RunIdPath,
    # Absent is the default: the parameter is text, so the document shows no number for it.
    limit: Annotated[PageLimitText | None, Query()] = None,
    nextToken: Annotated[NextToken | None, Query()] = None,
    signalName: Annotated[SignalName | None, Query()] = None,
) -> Response[str]:
    return ok(service().list_page(runId, limit or DEFAULT_PAGE_SIZE, nextToken, signalName))


api = FunctionApi(router)
