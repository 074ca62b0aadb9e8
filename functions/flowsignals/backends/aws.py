"""AWS clients, from botocore's session: what boto3's clients are, without loading boto3's
resources and transfer manager (s3transfer, multiprocessing), which no function uses: 20 ms
of every cold start."""

from __future__ import annotations

import functools
from typing import Any

import botocore.session
from botocore.config import Config


@functools.cache
def aws_session() -> Any:
    """The process's session, as boto3's default one: it reads the usual AWS settings
    (credentials, region, AWS_ENDPOINT_URL_<SERVICE>); its events reach every client."""
    return botocore.session.get_session()


def aws_client(service: str, config: Config | None = None) -> Any:
    """A client with botocore's standard retries (or ``config``)."""
    standard = Config(retries={"mode": "standard"})
    return aws_session().create_client(service, config=config or standard)
