"""Approval links: what a link delivers (stored as an ``ApprovalLink``), and the token in its URL
(signed, expiring, opaque, short).

A token names one action of one stored link; it does not carry the link's content (a payload
may take 4 KiB, a failure's cause 32 KiB, and a token must stay under 2 KB). Its signature is
an HMAC-SHA256 under a key named by its key id, so keys can rotate while older links work.
"""

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict
from pydantic_core import PydanticCustomError

from flowsignals.core.models import FlowSignalWaiter, SignalFailure
from flowsignals.core.values import caller_identity, read_payload

TOKEN_VERSION = "1"
MAX_TOKEN_LENGTH = 2048
_KEY_ID = re.compile("[A-Za-z0-9_-]{1,32}")
_LINK_ID = re.compile("[0-9a-f]{32}")
_ACTION = re.compile("[A-Za-z0-9_-]{1,32}")
_SECONDS = re.compile("[1-9][0-9]{0,11}")


class LinkAction(BaseModel):
    """What one button delivers: a payload (JSON text) or a failure."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    label: str
    payload_json: str | None = None
    failure: SignalFailure | None = None

    def was_delivered_to(self, waiter: FlowSignalWaiter) -> bool:
        """Whether the waiter received exactly this (JSON compared type-strictly: 1 is not
        true, as a state machine's IsBoolean sees it)."""
        if self.failure is not None or waiter.failure is not None:
            return self.failure == waiter.failure
        return self.delivers(waiter.payload_json)

    def delivers(self, payload_json: str | None) -> bool:
        """Whether this is the payload it delivers (JSON compared type-strictly)."""
        return self.failure is None and _canonical(self.payload_json) == _canonical(payload_json)


def _canonical(payload_json: str | None) -> str | None:
    if payload_json is None:
        return None
    return json.dumps(read_payload(payload_json), sort_keys=True, ensure_ascii=False)


class LinkDecision(BaseModel):
    """The first successful click of a link set: which action, when, by whom, on which step.
    Kept on the link, so the set stays decided whatever becomes of the step's row."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    action: str
    at: AwareDatetime
    by: str
    step_key: str


class ApprovalLink(BaseModel):
    """A minted set of links: one signal of one run, an action per link, until ``expires_at``."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    link_id: str
    run_id: str
    signal_name: str
    approver: str | None = None
    created_at: AwareDatetime
    expires_at: AwareDatetime
    actions: dict[str, LinkAction]
    decision: LinkDecision | None = None

    @property
    def identities(self) -> tuple[str, ...]:
        """Who clicks, for the deciders of a waiter: the approver's e-mail address (the link
        went to it), else nobody in particular."""
        if self.approver is None:
            return ()
        try:
            return (caller_identity(f"email:{self.approver}"),)
        except PydanticCustomError:  # a name, not an address
            return ()

    @property
    def idempotency_key(self) -> str:
        """The links of one minting decide once: every click after the first, on any of
        them, is a replay of that decision."""
        return f"link:{self.link_id}"


class MintedLinks(BaseModel):
    """Links as minted: one URL per action, all working until ``expires_at``."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    links: dict[str, str]
    expires_at: AwareDatetime


class ApprovalLinkStore(Protocol):
    """Where minted links are kept until their tokens expire."""

    def save_link(self, link: ApprovalLink) -> None:
        """Keep ``link`` (a new ``link_id``) until at least ``expires_at``."""
        ...

    def get_link(self, link_id: str) -> ApprovalLink | None:
        """The link, read-your-writes, or None."""
        ...

    def record_decision(self, link_id: str, decision: LinkDecision) -> LinkDecision:
        """Keep the link set's first decision: ``decision``, unless one was kept already
        (then that one). Returns the decision the link holds."""
        ...


class BadLinkToken(Exception):
    """Not a token this service signed, or one altered since: refused without detail."""


@dataclass(frozen=True)
class LinkToken:
    """What a token says, once its signature holds: which action of which link, until when."""

    link_id: str
    action: str
    expires_at: datetime

    def sign(self, key_id: str, key: bytes) -> str:
        """``<body>.<signature>``, both base64url without padding: URL-safe, ~170 characters."""
        if not _KEY_ID.fullmatch(key_id):
            raise ValueError("a key id is 1 to 32 letters, digits, '-' or '_'")
        seconds = int(self.expires_at.timestamp())
        body = f"{TOKEN_VERSION}.{key_id}.{self.link_id}.{self.action}.{seconds}".encode()
        return f"{_encode(body)}.{_encode(_signature(key, body))}"

    @classmethod
    def read(cls, token: str, key_for: Callable[[str], bytes | None]) -> "LinkToken":
        """The token's content, if ``key_for(key id)`` signed it; else ``BadLinkToken``. An
        expired token reads (its expiry is for the caller to tell)."""
        if len(token) > MAX_TOKEN_LENGTH or token.count(".") != 1:
            raise BadLinkToken
        encoded_body, encoded_signature = token.split(".")
        body, signature = _decode(encoded_body), _decode(encoded_signature)
        fields = body.decode("ascii", errors="replace").split(".")
        if len(fields) != 5:
            raise BadLinkToken
        version, key_id, link_id, action, seconds = fields
        key = key_for(key_id) if _KEY_ID.fullmatch(key_id) else None
        # The signature is checked before any field is believed.
        if key is None or not hmac.compare_digest(signature, _signature(key, body)):
            raise BadLinkToken
        if not (
            version == TOKEN_VERSION
            and _LINK_ID.fullmatch(link_id)
            and _ACTION.fullmatch(action)
            and _SECONDS.fullmatch(seconds)
        ):
            raise BadLinkToken
        return cls(link_id, action, datetime.fromtimestamp(int(seconds), UTC))


def _signature(key: bytes, body: bytes) -> bytes:
    return hmac.new(key, b"flowsignals-link\x00" + body, hashlib.sha256).digest()


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _decode(text: str) -> bytes:
    """Canonical base64url only: one token has one spelling."""
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise BadLinkToken from None
    if not text or _encode(data) != text:
        raise BadLinkToken
    return data
