"""Who may decide (docs/contract.md, Who may decide): deciders and quorums on every backend
(in-memory, moto, DynamoDB Local), through the Python API."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from conftest import Backend, FakeClock
from flowsignals import (
    FlowSignalStore,
    InvalidSignalRequest,
    NotAllowedToDecide,
    SignalDeliveryStatus,
    SignalFailure,
)

DELIVERED = SignalDeliveryStatus.DELIVERED
PENDING = SignalDeliveryStatus.PENDING
ALREADY_DELIVERED = SignalDeliveryStatus.ALREADY_DELIVERED
ANA = "email:ana@example.com"
BOB = "email:bob@example.com"
CAROL = "sub:carol-0001"
ROLE = "iam:arn:aws:iam::123456789012:role/Approvers"
SESSION = "iam:arn:aws:sts::123456789012:assumed-role/Approvers/dave"


@pytest.fixture
def run_id() -> UUID:
    return uuid4()


def test_deciders_and_quorum_are_stored_in_one_spelling(
    store: FlowSignalStore, run_id: UUID
) -> None:
    waiter = store.register_waiter(
        run_id,
        "pay",
        "approve",
        deciders=[
            "email:Ana@Example.COM",
            "iam:arn:aws:iam::123456789012:role/team/finance/Approvers",
            "group:finance",
        ],
        quorum=2,
    )
    assert waiter.deciders == (ANA, ROLE, "group:finance")
    assert waiter.quorum == 2 and waiter.approvals == ()
    assert store.get_waiter(run_id, "pay") == waiter


@pytest.mark.parametrize(
    ("deciders", "quorum", "why"),
    [
        (["ana@example.com"], 1, "kind:value"),
        (["email:not-an-address"], 1, "e-mail address"),
        (["phone:+123"], 1, "kind:value"),
        (["iam:arn:aws:s3:::bucket"], 1, "IAM user or role"),
        (["iam:arn:aws:sts::123456789012:assumed-role/R/s"], 1, "IAM user or role"),
        (["group:"], 1, "1 to"),
        (["sub: x"], 1, "whitespace"),
        (["group:a\x00"], 1, "control"),
        ([ANA, "email:ANA@example.com"], 1, "twice"),
        ([f"sub:{n}" for n in range(21)], 1, "at most 20"),
        ([ANA], 2, "at most the number of deciders"),
        ([], 0, "1 to 10"),
        ([], 11, "1 to 10"),
        ([], True, "whole number"),
        ("email:ana@example.com", 1, "list"),
    ],
)
def test_bad_deciders_or_quorum_are_refused_and_register_nothing(
    store: FlowSignalStore, run_id: UUID, deciders: Any, quorum: Any, why: str
) -> None:
    with pytest.raises(InvalidSignalRequest, match=why):
        store.register_waiter(run_id, "pay", "approve", deciders=deciders, quorum=quorum)
    assert store.get_waiter(run_id, "pay") is None


def test_only_a_decider_decides_and_a_refusal_writes_nothing(
    store: FlowSignalStore, run_id: UUID
) -> None:
    store.register_waiter(run_id, "pay", "approve", deciders=[ANA, "group:finance"])

    for identities in (None, [], [BOB], ["group:sales", CAROL]):
        with pytest.raises(NotAllowedToDecide):
            store.deliver_signal(run_id, "approve", "{}", caller_identities=identities)
    assert not store.get_waiter(run_id, "pay").is_delivered  # type: ignore[union-attr]

    by_group = store.deliver_signal(
        run_id, "approve", '"ok"', caller_identities=[CAROL, "group:finance"]
    )
    assert (by_group.status, by_group.step_key) == (DELIVERED, "pay")


def test_a_role_decider_matches_every_session_of_the_role(
    store: FlowSignalStore, run_id: UUID
) -> None:
    store.register_waiter(run_id, "pay", "approve", deciders=[ROLE])
    result = store.deliver_signal(run_id, "approve", "{}", caller_identities=[SESSION])
    assert result.status is DELIVERED


def test_the_receivers_are_the_waiters_the_caller_may_decide_oldest_first(
    store: FlowSignalStore, run_id: UUID, clock: FakeClock
) -> None:
    store.register_waiter(run_id, "bobs", "approve", deciders=[BOB])
    clock.advance(seconds=1)
    store.register_waiter(run_id, "anas", "approve", deciders=[ANA])
    clock.advance(seconds=1)
    store.register_waiter(run_id, "anyones", "approve")

    assert store.deliver_signal(run_id, "approve", "1", caller_identities=[ANA]).step_key == "anas"
    assert (
        store.deliver_signal(run_id, "approve", "2", caller_identities=[ANA]).step_key == "anyones"
    )
    # Ana may decide nothing more: her waiters are delivered (not a refusal).
    again = store.deliver_signal(run_id, "approve", "3", caller_identities=[ANA])
    assert (again.status, again.step_key) == (ALREADY_DELIVERED, "anas")
    assert store.deliver_signal(run_id, "approve", "4", caller_identities=[BOB]).step_key == "bobs"


def test_a_refusal_comes_before_buffering(store: FlowSignalStore, run_id: UUID) -> None:
    store.register_waiter(run_id, "pay", "approve", deciders=[ANA])
    with pytest.raises(NotAllowedToDecide):
        store.deliver_signal(
            run_id, "approve", "{}", caller_identities=[BOB], buffer_for=timedelta(hours=1)
        )
    assert store.list_buffered_signals(run_id) == []


def test_a_quorum_of_two_distinct_deciders(
    store: FlowSignalStore, run_id: UUID, clock: FakeClock
) -> None:
    store.register_waiter(run_id, "pay", "approve", deciders=[ANA, BOB, CAROL], quorum=2)

    first = store.deliver_signal(
        run_id, "approve", '{"ok": 1}', caller_identities=[ANA], delivered_by="Ana"
    )
    assert (first.status, first.step_key, first.approvals, first.quorum) == (PENDING, "pay", 1, 2)
    assert not first.replayed
    waiting = store.get_waiter(run_id, "pay")
    assert waiting is not None and not waiting.is_delivered
    assert [(a.by, a.payload_json) for a in waiting.approvals] == [("Ana", '{"ok": 1}')]
    assert waiting.approvals[0].at == clock.stored_now

    clock.advance(seconds=1)
    twice = store.deliver_signal(run_id, "approve", '"other"', caller_identities=[ANA])
    assert (twice.status, twice.approvals, twice.replayed) == (PENDING, 1, True)
    rejects = store.deliver_signal(
        run_id, "approve", failure=SignalFailure(error="Rejected"), caller_identities=[ANA]
    )
    assert (rejects.status, rejects.replayed) == (PENDING, True)  # she has decided: approve

    second = store.deliver_signal(run_id, "approve", '{"ok": 2}', caller_identities=[BOB])
    assert (second.status, second.step_key, second.replayed) == (DELIVERED, "pay", False)
    done = store.get_waiter(run_id, "pay")
    assert done is not None and done.payload_json == '{"ok": 2}'
    assert [a.by for a in done.approvals] == ["Ana", BOB]
    assert done.approved_by == {ANA, BOB}

    late = store.deliver_signal(run_id, "approve", "{}", caller_identities=[CAROL])
    assert late.status is ALREADY_DELIVERED
    ana_again = store.deliver_signal(run_id, "approve", "{}", caller_identities=[ANA])
    assert (ana_again.status, ana_again.replayed) == (DELIVERED, True)


def test_a_failure_from_a_decider_fails_a_quorum_at_once(
    store: FlowSignalStore, run_id: UUID
) -> None:
    store.register_waiter(run_id, "pay", "approve", deciders=[ANA, BOB], quorum=2)
    store.deliver_signal(run_id, "approve", "true", caller_identities=[ANA])
    failed = store.deliver_signal(
        run_id,
        "approve",
        failure=SignalFailure(error="Rejected", cause="no"),
        caller_identities=[BOB],
    )
    assert failed.status is DELIVERED
    waiter = store.get_waiter(run_id, "pay")
    assert waiter is not None and waiter.failure == SignalFailure(error="Rejected", cause="no")


def test_a_quorum_without_deciders_needs_callers_who_say_who_they_are(
    store: FlowSignalStore, run_id: UUID
) -> None:
    store.register_waiter(run_id, "pay", "approve", quorum=2)
    with pytest.raises(NotAllowedToDecide):
        store.deliver_signal(run_id, "approve", "{}")
    assert (
        store.deliver_signal(run_id, "approve", "{}", caller_identities=[CAROL]).status is PENDING
    )
    assert (
        store.deliver_signal(run_id, "approve", "{}", caller_identities=[BOB]).status is DELIVERED
    )


def test_a_re_register_replaces_who_decides_and_keeps_the_approvals(
    store: FlowSignalStore, run_id: UUID
) -> None:
    store.register_waiter(run_id, "pay", "approve", deciders=[ANA, BOB, CAROL], quorum=3)
    store.deliver_signal(run_id, "approve", "1", caller_identities=[ANA])
    store.deliver_signal(run_id, "approve", "2", caller_identities=[BOB])

    lowered = store.register_waiter(run_id, "pay", "approve", deciders=[ANA, BOB, CAROL], quorum=2)
    assert lowered.quorum == 2 and lowered.approved_by == {ANA, BOB} and not lowered.is_delivered
    completes = store.deliver_signal(run_id, "approve", "3", caller_identities=[CAROL])
    assert completes.status is DELIVERED

    store.register_waiter(run_id, "open", "review", deciders=[ANA])
    opened = store.register_waiter(run_id, "open", "review")
    assert opened.deciders == () and opened.quorum == 1
    assert store.deliver_signal(run_id, "review", "{}").status is DELIVERED


def test_an_early_signal_goes_only_to_a_waiter_its_sender_may_decide(
    store: FlowSignalStore, run_id: UUID, clock: FakeClock
) -> None:
    hour = timedelta(hours=1)
    store.deliver_signal(run_id, "ship", '"from ana"', caller_identities=[ANA], buffer_for=hour)
    clock.advance(seconds=1)

    bobs = store.register_waiter(run_id, "bobs", "ship", deciders=[BOB])
    quorum = store.register_waiter(run_id, "quorum", "ship", deciders=[ANA, BOB], quorum=2)
    assert not bobs.is_delivered and not quorum.is_delivered
    assert len(store.list_buffered_signals(run_id)) == 1  # still waiting for a waiter of hers

    anas = store.register_waiter(run_id, "anas", "ship", deciders=[ANA])
    assert anas.is_delivered and anas.payload_json == '"from ana"'
    assert store.list_buffered_signals(run_id) == []


def test_signal_waiters_show_who_decides_and_who_approved(
    store: FlowSignalStore, run_id: UUID
) -> None:
    store.register_waiter(run_id, "pay", "approve", deciders=[ANA, BOB], quorum=2)
    store.deliver_signal(run_id, "approve", '"big"', caller_identities=[ANA])
    (waiter,) = store.signal_waiters(run_id, "approve")
    assert (waiter.deciders, waiter.quorum, waiter.approved_by) == ((ANA, BOB), 2, {ANA})
    assert waiter.approvals == ()  # their payloads are not what a decision reads


def test_caller_identities_are_checked(store: FlowSignalStore, run_id: UUID) -> None:
    store.register_waiter(run_id, "pay", "approve")
    for bad in (["ana"], [ANA, ANA], "email:ana@example.com", [f"sub:{n}" for n in range(65)]):
        with pytest.raises(InvalidSignalRequest, match="caller_identities"):
            store.deliver_signal(run_id, "approve", "{}", caller_identities=bad)
    assert not store.get_waiter(run_id, "pay").is_delivered  # type: ignore[union-attr]


def test_every_backend_answers_the_quorum_alike(backend: Backend, run_id: UUID) -> None:
    """The same sequence, the same answers, whatever the backend (the property test covers
    the rest)."""
    store = backend.store
    store.register_waiter(run_id, "a", "go", deciders=[ANA, BOB, CAROL], quorum=3)
    answers = [
        store.deliver_signal(run_id, "go", f'"{who}"', caller_identities=[who]).status
        for who in (ANA, ANA, BOB, CAROL, CAROL)
    ]
    assert answers == [PENDING, PENDING, PENDING, DELIVERED, DELIVERED]
