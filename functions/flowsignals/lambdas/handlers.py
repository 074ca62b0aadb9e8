"""The Lambda entry points named in template.yaml. Each answers a well-formed API Gateway HTTP
API event for one of its own routes (the module of ``api/`` or ``approvals/`` that holds them:
any other route is API Gateway's 404), and any other event as its own direct operation,
within the time the invocation has left."""

from __future__ import annotations

import functools
import importlib
from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from flowsignals.backends.dynamodb import answer_within
from flowsignals.lambdas import direct
from flowsignals.lambdas.http.events import is_http_api_event
from flowsignals.lambdas.observability import logger, metrics

# Time kept back from the invocation's remaining time to shape and return the answer, so a
# slow DynamoDB is a 503 (or StoreUnavailable), never the function's own timeout.
ANSWER_MARGIN_SECONDS = 1.0


@functools.cache
def _routes(module: str) -> Any:
    """A function's routes, imported at its first HTTP request: no process builds the routes
    (and models) of another function."""
    return importlib.import_module(f"flowsignals.lambdas.{module}")


def _entry_point(
    operation: direct.DirectOperation, routes: str, *, with_metrics: bool = False
) -> Any:
    def handler(event: Any, context: LambdaContext) -> Any:
        seconds = context.get_remaining_time_in_millis() / 1000 - ANSWER_MARGIN_SECONDS
        with answer_within(seconds):
            if is_http_api_event(event):
                return _routes(routes).api.handle(event, context)
            return operation(event)

    if with_metrics:
        handler = metrics.log_metrics(handler)
    # Never the event, whatever POWERTOOLS_LOGGER_LOG_EVENT says: it holds payloads, task
    # tokens and approval link tokens.
    entry_point: Any = logger.inject_lambda_context(
        handler,
        correlation_id_path=correlation_paths.API_GATEWAY_HTTP,
        clear_state=True,
        log_event=False,
    )
    entry_point.routes = routes  # which module's routes it serves (the OpenAPI document, tests)
    return entry_point


def routes_of(entry_point: Any) -> Any:
    """The module holding an entry point's routes: its ``api`` (``route_keys``, ``handle``)."""
    return _routes(entry_point.routes)


register_handler = _entry_point(direct.register, "api.register", with_metrics=True)
deliver_handler = _entry_point(direct.deliver, "api.deliver", with_metrics=True)
get_handler = _entry_point(direct.get, "api.get")
remove_handler = _entry_point(direct.remove, "api.remove")
list_handler = _entry_point(direct.list_waiters, "api.listing")
signals_handler = _entry_point(direct.list_signals, "api.signals")
links_handler = _entry_point(direct.mint_links, "api.links")
approvals_handler = _entry_point(direct.http_only, "approvals.routes", with_metrics=True)
