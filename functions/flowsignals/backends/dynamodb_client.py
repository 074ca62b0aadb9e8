"""The DynamoDB client as the store uses it: short timeouts, answers within the invocation's
time (``aws.answer_within``), and botocore's failures turned into the store's errors."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from flowsignals.backends.aws import aws_errors, budgeted_client


def default_client() -> Any:
    """A DynamoDB client: botocore standard retries, timeouts short enough that a retry fits
    in a Lambda invocation. The endpoint follows the usual AWS settings
    (``AWS_ENDPOINT_URL_DYNAMODB``, region). No client-side parameter validation: the store
    builds every request from checked arguments, and DynamoDB validates it again anyway (a
    tenth of botocore's time on each call)."""
    return budgeted_client("dynamodb", parameter_validation=False)


class ConditionFailed(Exception):
    """A conditional write did not apply; ``old`` is the row it found, if any."""

    def __init__(self, old: dict[str, Any] | None) -> None:
        super().__init__("condition failed")
        self.old = old


class TransactionCanceled(Exception):
    """A transaction did not apply; ``reasons`` holds each item's code ("None" where fine)."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__(f"transaction canceled: {reasons}")
        self.reasons = reasons


def call(client: Any, operation: str, **params: Any) -> dict[str, Any]:
    """One DynamoDB request, its failures turned into the store's errors."""
    with aws_errors("DynamoDB", operation):
        try:
            response: dict[str, Any] = getattr(client, operation)(**params)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code == "ConditionalCheckFailedException":
                raise ConditionFailed(error.response.get("Item")) from None
            if code == "TransactionCanceledException":
                cancelled = error.response.get("CancellationReasons", [])
                reasons = [reason.get("Code", "None") for reason in cancelled]
                raise TransactionCanceled(reasons) from None
            raise
    return response
