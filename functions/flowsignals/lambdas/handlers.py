"""The Lambda entry points named in template.yaml. Each answers a well-formed API Gateway
HTTP API event through the resolver, and any other event as a direct invocation, within the
time the invocation has left."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from flowsignals.backends.dynamodb import answer_within
from flowsignals.lambdas import direct, routes
from flowsignals.lambdas.http_events import is_http_api_event
from flowsignals.lambdas.observability import logger, metrics

# Time kept back from the invocation's remaining time to shape and return the answer, so a
# slow DynamoDB is a 503 (or StoreUnavailable), never the function's own timeout.
ANSWER_MARGIN_SECONDS = 1.0


def _entry_point(
    operation: direct.DirectOperation,
    *,
    with_metrics: bool = False,
    http: Callable[[dict[str, Any], LambdaContext], Any] = routes.handle,
) -> Any:
    def handler(event: Any, context: LambdaContext) -> Any:
        seconds = context.get_remaining_time_in_millis() / 1000 - ANSWER_MARGIN_SECONDS
        with answer_within(seconds):
            if is_http_api_event(event):
                return http(event, context)
            return operation(event)

    if with_metrics:
        handler = metrics.log_metrics(handler)
    return logger.inject_lambda_context(
        handler, correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True
    )


register_handler = _entry_point(direct.register, with_metrics=True)
deliver_handler = _entry_point(direct.deliver, with_metrics=True)
get_handler = _entry_point(direct.get)
remove_handler = _entry_point(direct.remove)
list_handler = _entry_point(direct.list_waiters)
signals_handler = _entry_point(direct.list_signals)


def _link_routes(event: dict[str, Any], context: LambdaContext) -> Any:
    # Imported at the links function's first request: no other function builds its models.
    from flowsignals.lambdas import link_routes

    return link_routes.handle(event, context)


links_handler = _entry_point(direct.mint_links, http=_link_routes)


def _approval_pages(event: dict[str, Any], context: LambdaContext) -> Any:
    # Imported at the pages' first request: no other function's process loads them.
    from flowsignals.lambdas import approval_routes

    return approval_routes.handle(event, context)


approvals_handler = _entry_point(direct.http_only, with_metrics=True, http=_approval_pages)
