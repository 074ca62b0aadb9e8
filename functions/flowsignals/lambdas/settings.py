"""The functions' settings: read from the environment and validated once, at the first
invocation of a process, with an error that names the variable."""

import functools
import os
from datetime import timedelta
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from flowsignals.core.errors import FlowSignalError, describe_errors


class Settings(BaseModel):
    """The variables template.yaml sets on every function."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, defer_build=True)

    table_name: Annotated[str, Field(alias="TABLE_NAME", min_length=3, max_length=255)]
    # Whole days: DynamoDB's TTL is in seconds, but "1.5" in a template is a typo, not a plan.
    retention_days: Annotated[int, Field(alias="RETENTION_DAYS", ge=0, le=99_999)] = 7
    event_bus_name: Annotated[str, Field(alias="EVENT_BUS_NAME", min_length=1)] = "default"
    # Approval links: the secret that holds the signing key (AWS), or the key itself (make run).
    link_secret_id: Annotated[str | None, Field(alias="LINK_SECRET_ID", min_length=1)] = None
    link_key: Annotated[str | None, Field(alias="LINK_KEY", min_length=1, repr=False)] = None
    # Where links point: {base}/approvals/{token}.
    link_base_url: Annotated[
        str | None, Field(alias="LINK_BASE_URL", pattern="^https?://[^/?#\\s]+(/[^?#\\s]*)?$")
    ] = None

    # The JWT claim that lists a dashboard user's groups (group: deciders).
    jwt_groups_claim: Annotated[str, Field(alias="JWT_GROUPS_CLAIM", min_length=1)] = (
        "cognito:groups"
    )

    @property
    def retention(self) -> timedelta:
        return timedelta(days=self.retention_days)


@functools.cache
def settings() -> Settings:
    names = {field.alias for field in Settings.model_fields.values()}
    try:
        return Settings.model_validate({k: v for k, v in os.environ.items() if k in names})
    except ValidationError as error:
        raise FlowSignalError(
            f"flowsignals is misconfigured: {describe_errors(error.errors())}"
        ) from None
