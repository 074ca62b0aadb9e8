"""AWS clients, from botocore's session: what boto3's clients are, without loading boto3's
resources and transfer manager (s3transfer, multiprocessing), which no function uses: 20 ms
of every cold start."""

from __future__ import annotations

import functools
from typing import Any

import botocore.session
from botocore.config import Config


@functools.cache
def _session() -> Any:
    # One per process, as boto3's default session: it reads the usual AWS settings
    # (credentials, region, AWS_ENDPOINT_URL_<SERVICE>).
    return botocore.session.get_session()


def aws_client(service: str, config: Config | None = None) -> Any:
    """A client with botocore's standard retries (or ``config``)."""
    return _session().create_client(service, config=config or Config(retries={"mode": "standard"}))
