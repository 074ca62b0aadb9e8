"""The five Lambda entry points named in template.yaml. Each answers an API Gateway HTTP API
event (it has ``requestContext``) through the resolver, and any other event as a direct
invocation."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from flowsignals import direct, http_api
from flowsignals.runtime import logger, metrics, tracer


def _entry_point(operation: direct.DirectOperation, *, with_metrics: bool = False) -> Any:
    def handler(event: Any, context: LambdaContext) -> Any:
        if isinstance(event, dict) and "requestContext" in event:
            return http_api.handle(event, context)
        return operation(event)

    if with_metrics:
        handler = metrics.log_metrics(handler)
    # Responses hold payloads: the tracer must not copy them into X-Ray.
    handler = tracer.capture_lambda_handler(handler, capture_response=False)
    return logger.inject_lambda_context(
        handler, correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True
    )


register_handler = _entry_point(direct.register, with_metrics=True)
deliver_handler = _entry_point(direct.deliver, with_metrics=True)
get_handler = _entry_point(direct.get)
remove_handler = _entry_point(direct.remove)
list_handler = _entry_point(direct.list_waiters)
