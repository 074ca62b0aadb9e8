"""The JSON shapes of minting approval links: the body of ``POST …/links``, the direct event of
the links function, and the answer."""

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from flowsignals.core.links import LinkAction
from flowsignals.core.models import SignalFailure
from flowsignals.core.values import (
    DEFAULT_LINK_SECONDS,
    ActionLabel,
    ActionName,
    Approver,
    LinkPayloadValue,
    LinkSeconds,
    RunId,
    SignalName,
)
from flowsignals.lambdas.schemas import PayloadOrFailure, RequestModel, View

MAX_ACTIONS = 10
# What one link keeps (its actions, as stored): well inside a DynamoDB item's 400 KB, whatever
# ten actions with 32 KiB causes would add up to.
MAX_ACTIONS_BYTES = 65_536


class LinkActionBody(PayloadOrFailure):
    """What a button delivers: ``payload`` (default ``{}``) or ``failure``."""

    label: ActionLabel | None = None
    # Kept as its JSON text; the document shows the value.
    payload: Annotated[LinkPayloadValue, Field(json_schema_extra={"default": {}})] = "{}"

    def action(self, name: str) -> LinkAction:
        label = self.label or name
        if self.failure is not None:
            return LinkAction(label=label, failure=self.failure.failure())
        return LinkAction(label=label, payload_json=self.payload)


class MintLinksBody(RequestModel):
    """The body of ``POST /runs/{runId}/signals/{signalName}/links``."""

    expiresInSeconds: LinkSeconds = DEFAULT_LINK_SECONDS
    approver: Approver | None = None
    actions: (
        Annotated[
            dict[ActionName, LinkActionBody],
            Field(
                min_length=1,
                max_length=MAX_ACTIONS,
                description="Default: approve, reject. Together, as stored, at most"
                f" {MAX_ACTIONS_BYTES} bytes of UTF-8 (ten actions with long failure causes"
                " are refused: a sum no schema can state)",
                # Each name is one of ActionName's (its patternProperties), nothing else.
                json_schema_extra={"additionalProperties": False},
            ),
        ]
        | None
    ) = None

    @field_validator("actions")
    @classmethod
    def _fits_a_row(
        cls, actions: dict[str, LinkActionBody] | None
    ) -> dict[str, LinkActionBody] | None:
        if actions is not None:
            size = sum(
                len(body.action(name).model_dump_json().encode()) for name, body in actions.items()
            )
            if size > MAX_ACTIONS_BYTES:
                raise PydanticCustomError(
                    "too_large",
                    f"{size} bytes of UTF-8 together is over a link's limit of {MAX_ACTIONS_BYTES}",
                )
        return actions

    def link_actions(self) -> dict[str, LinkAction]:
        if self.actions is None:
            return {
                "approve": LinkAction(label="Approve", payload_json='{"approved": true}'),
                "reject": LinkAction(label="Reject", failure=SignalFailure(error="Rejected")),
            }
        return {name: body.action(name) for name, body in self.actions.items()}


class MintLinksEvent(MintLinksBody):
    """The links function's direct event."""

    runId: RunId
    signalName: SignalName


class LinksView(View):
    links: dict[str, str] = Field(description="One URL per action: {base}/approvals/{token}")
    expiresAt: str
