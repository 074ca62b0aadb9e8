"""Approval links as a service: minting them, and what opening (GET/HEAD: look only) and
clicking (POST: deliver once) one does. The pages that show it are ``pages``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from http import HTTPStatus
from typing import Any

from flowsignals.core.errors import NotAllowedToDecide
from flowsignals.core.links import (
    ApprovalLink,
    ApprovalLinkStore,
    BadLinkToken,
    LinkAction,
    LinkDecision,
    LinkToken,
)
from flowsignals.core.models import FlowSignalWaiter, SignalDeliveryStatus
from flowsignals.core.store import (
    Clock,
    FlowSignalStore,
    can_receive,
    next_receiver,
    read_clock,
    undeliverable,
)
from flowsignals.core.values import format_timestamp
from flowsignals.lambdas.approvals.keys import LinkKeys
from flowsignals.lambdas.approvals.schemas import MintLinksBody
from flowsignals.lambdas.service import SignalService

# deliveredBy of a link minted without an approver.
ANONYMOUS_APPROVER = "link"


class Outcome(Enum):
    """Where a link's signal stands, and the status its page answers with (as the API's)."""

    WAITING = ("waiting", HTTPStatus.OK)  # a step waits: the page offers the button
    DONE = ("done", HTTPStatus.OK)  # this click (or an earlier one of this link) delivered
    PENDING = ("pending", HTTPStatus.ACCEPTED)  # approved; the step's quorum needs more
    DECIDED = ("decided", HTTPStatus.CONFLICT)  # another decision came first
    NOT_ALLOWED = ("not allowed", HTTPStatus.FORBIDDEN)  # the approver may not decide it
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

    @property
    def recorded(self) -> LinkDecision | None:
        """The link set's decision, as kept on the link."""
        return self.link.decision

    def decision(self) -> str | None:
        """What was decided, in the words of the link's buttons where one matches."""
        recorded = self.link.decision
        if recorded is not None:
            return self.link.actions[recorded.action].label
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
        if link.decision is not None:  # the link set has decided, for its whole life
            return self._as_recorded(link, action)
        # The signal's waiters as a delivery reads them (no payloads), then the one shown.
        waiters = self._store.signal_waiters(link.run_id, link.signal_name)
        decided = next((w for w in waiters if w.idempotency_key == link.idempotency_key), None)
        if decided is not None:  # by one of these links
            return Approval(link, action, Outcome.DECIDED, self._whole(decided))
        now = read_clock(self._clock)
        mine = [w for w in waiters if w.may_be_decided_by(link.identities)]
        if waiters and not mine:
            return Approval(link, action, Outcome.NOT_ALLOWED)
        approved = next((w for w in can_receive(mine, now) if _approved_by(w, link)), None)
        if approved is not None:  # this link's approver approved; the quorum needs more
            return Approval(link, action, Outcome.PENDING, approved)
        receiver = next_receiver(mine, now)
        if receiver is not None:
            return Approval(link, action, Outcome.WAITING, receiver)
        verdict = undeliverable(mine, now)
        step = next((w for w in mine if w.step_key == verdict.step_key), None)
        return Approval(link, action, _OUTCOMES[verdict.status], self._whole(step))

    def decide(self, token: str) -> Approval:
        """Deliver the link's action, once for the whole life of the links of one minting:
        the first successful click is recorded on the link, and every later click, of any
        of its actions, reads that record."""
        link, action = self._open(token)
        if link.decision is not None:
            return self._as_recorded(link, action)
        chosen = link.actions[action]
        try:
            result = self._signals.deliver(
                link.run_id,
                link.signal_name,
                chosen.payload_json,
                failure=chosen.failure,
                idempotency_key=link.idempotency_key,
                delivered_by=link.approver or ANONYMOUS_APPROVER,
                caller_identities=link.identities,
            )
        except NotAllowedToDecide:
            return Approval(link, action, Outcome.NOT_ALLOWED)
        step_key = result.step_key
        step = None if step_key is None else self._store.get_waiter(link.run_id, step_key)
        outcome = _OUTCOMES[result.status]
        if result.replayed and not (step is not None and _chose(chosen, step, link)):
            outcome = Outcome.DECIDED  # another of these links decided first
        if outcome in (Outcome.DONE, Outcome.PENDING) and step_key is not None:
            # Kept on the link: its set stays decided whatever becomes of the step's row. A
            # click that dies before this is redone by the next (a replay, then this).
            at = read_clock(self._clock)
            by = link.approver or ANONYMOUS_APPROVER
            kept = self._links.record_decision(
                link.link_id, LinkDecision(action=action, at=at, by=by, step_key=step_key)
            )
            if kept.action != action:  # another of its links was recorded first
                return self._as_recorded(link.model_copy(update={"decision": kept}), action)
        return Approval(link, action, outcome, step, result.replayed)

    def _as_recorded(self, link: ApprovalLink, action: str) -> Approval:
        """A link set that decided: this action's is done, any other's is decided."""
        assert link.decision is not None
        step = self._store.get_waiter(link.run_id, link.decision.step_key)
        outcome = Outcome.DONE if link.decision.action == action else Outcome.DECIDED
        if outcome is Outcome.DONE and step is not None and _approved_by(step, link):
            # Its approval stands; while the quorum is not reached, the page says so.
            outcome = Outcome.DONE if step.is_delivered else Outcome.PENDING
        return Approval(link, action, outcome, step, replayed=True)

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


def _approved_by(waiter: FlowSignalWaiter, link: ApprovalLink) -> bool:
    return bool(link.identities) and link.identities[0] in waiter.approved_by


def _chose(action: LinkAction, step: FlowSignalWaiter, link: ApprovalLink) -> bool:
    """Whether the step holds this action from this link: as the approval its approver
    gave, or, without one, as what it was delivered."""
    by = link.approver or ANONYMOUS_APPROVER
    given = [approval for approval in step.approvals if approval.by == by]
    if given:
        return any(action.delivers(approval.payload_json) for approval in given)
    return step.is_delivered and action.was_delivered_to(step)


_OUTCOMES = {
    SignalDeliveryStatus.DELIVERED: Outcome.DONE,
    SignalDeliveryStatus.PENDING: Outcome.PENDING,
    SignalDeliveryStatus.ALREADY_DELIVERED: Outcome.DECIDED,
    SignalDeliveryStatus.EXPIRED: Outcome.STEP_EXPIRED,
    SignalDeliveryStatus.NOT_FOUND: Outcome.NO_STEP,
}
