"""Approval links as a service: minting them, and what opening (GET/HEAD: look only) and
clicking (POST: deliver once) one does. The pages that show it are ``pages``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from http import HTTPStatus
from typing import Any

from flowsignals.core.links import ApprovalLink, ApprovalLinkStore, BadLinkToken, LinkToken
from flowsignals.core.models import FlowSignalWaiter, SignalDeliveryStatus
from flowsignals.core.store import Clock, FlowSignalStore, next_receiver, read_clock, undeliverable
from flowsignals.core.values import format_timestamp
from flowsignals.lambdas.approvals.keys import LinkKeys
from flowsignals.lambdas.approvals.schemas import MintLinksBody
from flowsignals.lambdas.service import SignalService

# deliveredBy of a link minted without an approver.
ANONYMOUS_APPROVER = "link"


class Outcome(Enum):
    """Where a link's signal stands, and the status its page answers with."""

    WAITING = ("waiting", HTTPStatus.OK)  # a step waits: the page offers the button
    DONE = ("done", HTTPStatus.OK)  # this click (or an earlier one of this link) delivered
    DECIDED = ("decided", HTTPStatus.CONFLICT)  # another decision came first
    STEP_EXPIRED = ("step expired", HTTPStatus.GONE)  # the step waited past its deadline
    NO_STEP = ("no step", HTTPStatus.NOT_FOUND)  # no step waits for the signal (yet, or now)

    @property
    def status(self) -> HTTPStatus:
        return self.value[1]


@dataclass(frozen=True)
class Approval:
    """What a page shows: the link, the action, and the step it concerns (if any)."""

    link: ApprovalLink
    action: str
    outcome: Outcome
    step: FlowSignalWaiter | None = None
    replayed: bool = False

    @property
    def label(self) -> str:
        return self.link.actions[self.action].label

    def decision(self) -> str | None:
        """What the step received, in the words of the link's buttons where one matches."""
        step = self.step
        if step is None or not step.is_delivered:
            return None
        for action in self.link.actions.values():
            if action.was_delivered_to(step):
                return action.label
        return f"failed ({step.failure.error})" if step.failure is not None else "delivered"


class LinkExpired(Exception):
    def __init__(self, expired_at: datetime) -> None:
        super().__init__(f"the link expired at {format_timestamp(expired_at)}")
        self.expired_at = expired_at


class ApprovalService:
    def __init__(
        self,
        signals: SignalService,
        store: FlowSignalStore,
        links: ApprovalLinkStore,
        keys: LinkKeys,
        clock: Clock,
    ) -> None:
        self._signals = signals
        self._store = store
        self._links = links
        self._keys = keys
        self._clock = clock

    def mint(
        self, run_id: str, signal_name: str, request: MintLinksBody, base_url: str
    ) -> dict[str, Any]:
        """``{"links": {action: url}, "expiresAt"}``; a waiter need not exist yet."""
        now = read_clock(self._clock)
        # Whole seconds: the token carries its expiry in seconds.
        expires_at = (now + timedelta(seconds=request.expiresInSeconds)).replace(microsecond=0)
        link = ApprovalLink(
            link_id=uuid.uuid4().hex,
            run_id=run_id,
            signal_name=signal_name,
            approver=request.approver,
            created_at=now,
            expires_at=expires_at,
            actions=request.link_actions(),
        )
        key = self._keys.signing_key()  # first: a link is saved only if it can be signed
        self._links.save_link(link)
        base = base_url.rstrip("/")
        urls = {
            action: f"{base}/approvals/"
            + LinkToken(link.link_id, action, expires_at).sign(key.keyId, key.secret)
            for action in link.actions
        }
        return {"links": urls, "expiresAt": format_timestamp(expires_at)}

    def inspect(self, token: str) -> Approval:
        """What clicking would do now. Reads only: a mail scanner's GET decides nothing."""
        link, action = self._open(token)
        # The signal's waiters as a delivery reads them (no payloads), then the one shown.
        waiters = self._store.signal_waiters(link.run_id, link.signal_name)
        decided = next((w for w in waiters if w.idempotency_key == link.idempotency_key), None)
        if decided is not None:  # by one of these links
            return Approval(link, action, Outcome.DECIDED, self._whole(decided))
        now = read_clock(self._clock)
        receiver = next_receiver(waiters, now)
        if receiver is not None:
            return Approval(link, action, Outcome.WAITING, receiver)
        verdict = undeliverable(waiters, now)
        step = next((w for w in waiters if w.step_key == verdict.step_key), None)
        return Approval(link, action, _OUTCOMES[verdict.status], self._whole(step))

    def decide(self, token: str) -> Approval:
        """Deliver the link's action, once for all the links of one minting."""
        link, action = self._open(token)
        chosen = link.actions[action]
        result = self._signals.deliver(
            link.run_id,
            link.signal_name,
            chosen.payload_json,
            failure=chosen.failure,
            idempotency_key=link.idempotency_key,
            delivered_by=link.approver or ANONYMOUS_APPROVER,
        )
        step_key = result.step_key
        step = None if step_key is None else self._store.get_waiter(link.run_id, step_key)
        outcome = _OUTCOMES[result.status]
        if result.replayed and not (step is not None and chosen.was_delivered_to(step)):
            outcome = Outcome.DECIDED  # another of these links decided first
        return Approval(link, action, outcome, step, result.replayed)

    def _whole(self, waiter: FlowSignalWaiter | None) -> FlowSignalWaiter | None:
        """A decided waiter with what it received (which the page names), read again."""
        if waiter is None or not waiter.is_delivered:
            return waiter
        return self._store.get_waiter(waiter.run_id, waiter.step_key) or waiter

    def _open(self, token: str) -> tuple[ApprovalLink, str]:
        """The link and action a token names; ``BadLinkToken`` unless we signed it and it is
        still known, ``LinkExpired`` once its time is over."""
        read = LinkToken.read(token, self._keys.key_for)
        if read_clock(self._clock) >= read.expires_at:
            raise LinkExpired(read.expires_at)
        link = self._links.get_link(read.link_id)
        if link is None or read.action not in link.actions:
            raise BadLinkToken
        return link, read.action


_OUTCOMES = {
    SignalDeliveryStatus.DELIVERED: Outcome.DONE,
    SignalDeliveryStatus.ALREADY_DELIVERED: Outcome.DECIDED,
    SignalDeliveryStatus.EXPIRED: Outcome.STEP_EXPIRED,
    SignalDeliveryStatus.NOT_FOUND: Outcome.NO_STEP,
}
