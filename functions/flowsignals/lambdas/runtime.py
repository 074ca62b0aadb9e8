"""What a Lambda process creates once: the services over the table the settings name (created
at first use, then reused). Approval links' services are imported at their first use: only
the link functions' requests need them."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from flowsignals.backends.dynamodb import DynamoDBFlowSignalStore
from flowsignals.core.errors import FlowSignalError
from flowsignals.core.store import system_clock
from flowsignals.lambdas.observability import logger, metrics
from flowsignals.lambdas.service import SignalService
from flowsignals.lambdas.settings import settings

if TYPE_CHECKING:
    from flowsignals.lambdas.approvals.keys import LinkKeys
    from flowsignals.lambdas.approvals.service import ApprovalService

__all__ = ["approvals", "link_base_url", "link_keys", "logger", "metrics", "service", "store"]


@functools.cache
def store() -> DynamoDBFlowSignalStore:
    """The process's store (its DynamoDB client with it)."""
    config = settings()
    return DynamoDBFlowSignalStore(config.table_name, retention=config.retention)


@functools.cache
def service() -> SignalService:
    return SignalService(store(), metrics)


@functools.cache
def link_keys() -> LinkKeys:
    from flowsignals.lambdas.approvals.keys import FixedLinkKeys, LinkKey, SecretsManagerLinkKeys

    config = settings()
    if config.link_secret_id is not None:
        return SecretsManagerLinkKeys(config.link_secret_id)
    if config.link_key is not None:
        return FixedLinkKeys(LinkKey.parse(config.link_key, "LINK_KEY"))
    raise FlowSignalError("flowsignals is misconfigured: links need LINK_SECRET_ID or LINK_KEY")


def link_base_url() -> str:
    """Where minted links point ({base}/approvals/{token})."""
    base = settings().link_base_url
    if base is None:
        raise FlowSignalError("flowsignals is misconfigured: links need LINK_BASE_URL")
    return base


@functools.cache
def approvals() -> ApprovalService:
    from flowsignals.lambdas.approvals.service import ApprovalService

    return ApprovalService(service(), store(), store(), link_keys(), system_clock)
