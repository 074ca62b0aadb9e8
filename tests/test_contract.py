"""The store contract (docs/contract.md, Python API) against every backend: in-memory, moto,
DynamoDB Local."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID, uuid4

import pytest

from conftest import Backend, FakeClock
from flowsignals import (
    FlowSignalStore,
    FlowSignalWaiter,
    InvalidSignalRequest,
    SignalDeliveryResult,
    SignalDeliveryStatus,
)

DELIVERED = SignalDeliveryStatus.DELIVERED
NOT_FOUND = SignalDeliveryStatus.NOT_FOUND
ALREADY_DELIVERED = SignalDeliveryStatus.ALREADY_DELIVERED
EXPIRED = SignalDeliveryStatus.EXPIRED


@pytest.fixture
def run_id() -> UUID:
    return uuid4()


# --- register / get ----------------------------------------------------------------------


def test_register_returns_the_stored_waiter_and_get_reads_it_back(
    store: FlowSignalStore, run_id: UUID, clock: FakeClock
) -> None:
    deadline = clock.now + timedelta(hours=1)
    waiter = store.register_waiter(run_id, "approve-step", "approve", deadline)

    assert waiter == FlowSignalWaiter(
        run_id=run_id,
        step_key="approve-step",
        signal_name="approve",
        created_at=clock.stored_now,
        expires_at=deadline.replace(microsecond=123000),
    )
    assert store.get_waiter(run_id, "approve-step") == waiter


def test_timestamps_are_utc_milliseconds_and_read_back_equal(
    store: FlowSignalStore, run_id: UUID, clock: FakeClock
) -> None:
    plus_two = timezone(timedelta(hours=2))
    deadline = datetime(2096, 11, 23, 14, 0, 0, 999999, tzinfo=plus_two)
    waiter = store.register_waiter(run_id, "s", "go", deadline)

    assert waiter.created_at == clock.stored_now
    assert waiter.created_at.utcoffset() == timedelta(0)
    assert waiter.expires_at == datetime(2096, 11, 23, 12, 0, 0, 999000, tzinfo=UTC)
    assert waiter.expires_at is not None and waiter.expires_at.utcoffset() == timedelta(0)

    result = store.deliver_signal(run_id, "go", "{}")
    assert result.delivered_at == clock.stored_now
    stored = store.get_waiter(run_id, "s")
    assert stored is not None and stored.delivered_at == result.delivered_at
    assert stored.expires_at == waiter.expires_at and stored.created_at == waiter.created_at


def test_get_of_a_missing_waiter_is_none(store: FlowSignalStore, run_id: UUID) -> None:
    store.register_waiter(run_id, "present", "go")
    assert store.get_waiter(run_id, "absent") is None
    assert store.get_waiter(uuid4(), "present") is None


def test_run_id_accepts_a_uuid_or_its_string_forms_in_any_case(
    store: FlowSignalStore, run_id: UUID
) -> None:
    store.register_waiter(str(run_id).upper(), "s", "go")

    for form in (run_id, str(run_id), str(run_id).upper(), run_id.hex, run_id.hex.upper()):
        waiter = store.get_waiter(form, "s")
        assert waiter is not None and waiter.run_id == str(run_id)
    assert [w.step_key for w in store.list_waiters(run_id.hex)] == ["s"]
    assert store.deliver_signal(run_id.hex.upper(), "go", "1").status is DELIVERED


def test_step_key_is_stored_as_given(store: FlowSignalStore, run_id: UUID) -> None:
    odd = "  Ünïcode / step #1 \u2028 ✓ "
    store.register_waiter(run_id, odd, "go")
    waiter = store.get_waiter(run_id, odd)
    assert waiter is not None and waiter.step_key == odd
    assert store.get_waiter(run_id, odd.strip()) is None


def test_expires_at_may_lie_in_the_past(
    store: FlowSignalStore, run_id: UUID, clock: FakeClock
) -> None:
    waiter = store.register_waiter(run_id, "late", "go", clock.now - timedelta(days=1))
    assert waiter.expires_at is not None and waiter.expires_at < clock.now
    assert store.deliver_signal(run_id, "go", "{}").status is EXPIRED


# --- re-register ---------------------------------------------------------------------------


def test_repeated_register_keeps_created_at_and_replaces_the_rest(
    store: FlowSignalStore, run_id: UUID, clock: FakeClock
) -> None:
    first = store.register_waiter(
        run_id, "s", "approve", clock.now + timedelta(hours=1), task_token="token-1"
    )
    clock.advance(minutes=5)
    second = store.register_waiter(run_id, "s", "review", clock.now + timedelta(hours=2))

    assert second.created_at == first.created_at
    assert second.signal_name == "review"
    assert second.expires_at == clock.stored_now + timedelta(hours=2)
    assert second.task_token is None
    assert store.get_waiter(run_id, "s") == second


def test_repeated_register_with_no_deadline_removes_it(
    store: FlowSignalStore, run_id: UUID, clock: FakeClock
) -> None:
    store.register_waiter(run_id, "s", "go", clock.now + timedelta(seconds=1))
    waiter = store.register_waiter(run_id, "s", "go")
    assert waiter.expires_at is None
    clock.advance(days=30)
    assert store.deliver_signal(run_id, "go", "{}").status is DELIVERED


def test_repeated_register_keeps_an_earlier_delivery(
    store: FlowSignalStore, run_id: UUID, clock: FakeClock
) -> None:
    store.register_waiter(run_id, "s", "go", task_token="t1")
    delivery = store.deliver_signal(run_id, "go", '{"ok": true}', idempotency_key="k1")
    clock.advance(minutes=1)

    waiter = store.register_waiter(
        run_id, "s", "go", clock.now + timedelta(hours=1), task_token="t2"
    )

    assert waiter.delivered_at == delivery.delivered_at
    assert waiter.payload_json == '{"ok": true}'
    assert waiter.idempotency_key == "k1"
    assert waiter.task_token == "t2"
    assert waiter.expires_at == clock.stored_now + timedelta(hours=1)
    assert store.get_waiter(run_id, "s") == waiter
    assert store.deliver_signal(run_id, "go", "{}").status is ALREADY_DELIVERED


def test_signal_rename_moves_the_waiter_to_the_new_name(
    store: FlowSignalStore, run_id: UUID
) -> None:
    store.register_waiter(run_id, "s", "approve")
    store.register_waiter(run_id, "s", "reject")

    assert store.deliver_signal(run_id, "approve", "{}").status is NOT_FOUND
    result = store.deliver_signal(run_id, "reject", "{}")
    assert (result.status, result.step_key) == (DELIVERED, "s")


def test_task_token_is_kept_and_never_serialised(store: FlowSignalStore, run_id: UUID) -> None:
    token = "AQCEAAAAKgAAAAMAAAAAAAAAAbsecret-task-token"
    waiter = store.register_waiter(run_id, "s", "go", task_token=token)
    stored = store.get_waiter(run_id, "s")

    assert waiter.task_token == token
    assert stored is not None and stored.task_token == token
    assert token not in repr(stored)
    assert token not in str(stored)
    assert "task_token" not in stored.model_dump()
    assert token not in stored.model_dump_json()


# --- deliver -----------------------------------------------------------------------------


def test_deliver_stores_the_payload_once(
    store: FlowSignalStore, run_id: UUID, clock: FakeClock
) -> None:
    store.register_waiter(run_id, "s", "go")
    result = store.deliver_signal(run_id, "go", '{"approved": true}')

    assert result == SignalDeliveryResult(
        status=DELIVERED, step_key="s", delivered_at=clock.stored_now, replayed=False
    )
    waiter = store.get_waiter(run_id, "s")
    assert waiter is not None
    assert waiter.delivered_at == clock.stored_now
    assert json.loads(waiter.payload_json or "") == {"approved": True}
    assert waiter.idempotency_key is None


def test_a_delivered_payload_never_changes(
    store: FlowSignalStore, run_id: UUID, clock: FakeClock
) -> None:
    store.register_waiter(run_id, "s", "go")
    first = store.deliver_signal(run_id, "go", '"first"')
    clock.advance(seconds=1)

    second = store.deliver_signal(run_id, "go", '"second"')

    assert second == SignalDeliveryResult(
        status=ALREADY_DELIVERED, step_key="s", delivered_at=first.delivered_at
    )
    waiter = store.get_waiter(run_id, "s")
    assert waiter is not None and waiter.payload_json == '"first"'
    assert waiter.delivered_at == first.delivered_at


@pytest.mark.parametrize(
    "payload",
    ["null", "0", "-1.5e300", '"text"', "[1, [2, {}]]", ' \n\t{"a": "\\u00e9"} \r\n', "true"],
)
def test_any_json_value_is_a_payload(store: FlowSignalStore, run_id: UUID, payload: str) -> None:
    store.register_waiter(run_id, "s", "go")
    assert store.deliver_signal(run_id, "go", payload).status is DELIVERED
    waiter = store.get_waiter(run_id, "s")
    assert waiter is not None and waiter.payload_json == payload


def test_a_payload_of_exactly_the_limit_is_delivered(store: FlowSignalStore, run_id: UUID) -> None:
    payload = json.dumps(
        "é" * 131_071, ensure_ascii=False
    )  # 2 quotes + 131,071 two-byte characters = 262,144 bytes
    assert len(payload.encode()) == 262_144
    store.register_waiter(run_id, "s", "go")
    assert store.deliver_signal(run_id, "go", payload).status is DELIVERED
    waiter = store.get_waiter(run_id, "s")
    assert waiter is not None and waiter.payload_json == payload


def test_not_found_when_no_waiter_has_the_name(store: FlowSignalStore, run_id: UUID) -> None:
    store.register_waiter(run_id, "s", "approve")
    store.register_waiter(uuid4(), "s", "other")

    result = store.deliver_signal(run_id, "other", "{}")

    assert result == SignalDeliveryResult(status=NOT_FOUND)
    assert result.step_key is None and result.delivered_at is None and result.expires_at is None
    assert store.deliver_signal(uuid4(), "approve", "{}").status is NOT_FOUND


def test_signal_names_are_stripped_and_case_sensitive(store: FlowSignalStore, run_id: UUID) -> None:
    waiter = store.register_waiter(run_id, "s", "  Approve\t")
    assert waiter.signal_name == "Approve"

    assert store.deliver_signal(run_id, "approve", "{}").status is NOT_FOUND
    assert store.deliver_signal(run_id, "APPROVE", "{}").status is NOT_FOUND
    assert store.deliver_signal(run_id, "\n Approve  ", "{}").status is DELIVERED


def test_oldest_waiter_receives_first(
    store: FlowSignalStore, run_id: UUID, clock: FakeClock
) -> None:
    # Registered newest key first, so the order cannot come from the step keys.
    for step_key in ("c", "b", "a"):
        store.register_waiter(run_id, step_key, "approve")
        clock.advance(seconds=1)

    received = [store.deliver_signal(run_id, "approve", f'"{n}"').step_key for n in range(3)]

    assert received == ["c", "b", "a"]
    assert store.deliver_signal(run_id, "approve", "{}").status is ALREADY_DELIVERED


def test_equal_created_at_is_broken_by_step_key(store: FlowSignalStore, run_id: UUID) -> None:
    for step_key in ("b", "c", "a"):
        store.register_waiter(run_id, step_key, "approve")

    received = [store.deliver_signal(run_id, "approve", "{}").step_key for _ in range(3)]

    assert received == ["a", "b", "c"]


def test_already_delivered_reports_the_oldest_delivered_waiter(
    store: FlowSignalStore, run_id: UUID, clock: FakeClock
) -> None:
    store.register_waiter(run_id, "first", "go")
    clock.advance(seconds=1)
    store.register_waiter(run_id, "second", "go")
    first = store.deliver_signal(run_id, "go", "1")
    clock.advance(seconds=1)
    store.deliver_signal(run_id, "go", "2")

    result = store.deliver_signal(run_id, "go", "3")

    assert result == SignalDeliveryResult(
        status=ALREADY_DELIVERED, step_key="first", delivered_at=first.delivered_at
    )


def test_other_signal_names_and_runs_are_untouched(store: FlowSignalStore, run_id: UUID) -> None:
    other_run = uuid4()
    store.register_waiter(run_id, "a", "approve")
    store.register_waiter(run_id, "b", "reject")
    store.register_waiter(other_run, "a", "approve")

    store.deliver_signal(run_id, "approve", "{}")

    assert [w.delivered_at is not None for w in store.list_waiters(run_id)] == [True, False]
    assert store.list_waiters(other_run)[0].delivered_at is None


# --- expiry ------------------------------------------------------------------------------


def test_expired_at_the_deadline_and_after(
    store: FlowSignalStore, run_id: UUID, clock: FakeClock
) -> None:
    deadline = clock.stored_now + timedelta(minutes=10)
    store.register_waiter(run_id, "s", "go", deadline)
    expired = SignalDeliveryResult(status=EXPIRED, step_key="s", expires_at=deadline)

    clock.now = deadline
    assert store.deliver_signal(run_id, "go", "{}") == expired
    clock.advance(days=3)
    assert store.deliver_signal(run_id, "go", "{}") == expired
    waiter = store.get_waiter(run_id, "s")
    assert waiter is not None and waiter.delivered_at is None and waiter.payload_json is None


def test_deliverable_one_millisecond_before_the_deadline(
    store: FlowSignalStore, run_id: UUID, clock: FakeClock
) -> None:
    deadline = clock.stored_now + timedelta(minutes=10)
    store.register_waiter(run_id, "s", "go", deadline)

    clock.now = deadline - timedelta(milliseconds=1)

    assert store.deliver_signal(run_id, "go", "{}").status is DELIVERED


def test_the_clock_is_truncated_to_milliseconds_before_the_deadline_check(
    store: FlowSignalStore, run_id: UUID, clock: FakeClock
) -> None:
    deadline = clock.stored_now + timedelta(minutes=10)
    store.register_waiter(run_id, "s", "go", deadline)

    clock.now = deadline - timedelta(microseconds=1)  # kept as deadline - 1 ms
    result = store.deliver_signal(run_id, "go", "{}")

    assert result.status is DELIVERED
    assert result.delivered_at == deadline - timedelta(milliseconds=1)


def test_an_extended_deadline_makes_an_expired_waiter_deliverable(
    store: FlowSignalStore, run_id: UUID, clock: FakeClock
) -> None:
    store.register_waiter(run_id, "s", "go", clock.now + timedelta(minutes=1))
    clock.advance(minutes=2)
    assert store.deliver_signal(run_id, "go", "{}").status is EXPIRED

    store.register_waiter(run_id, "s", "go", clock.now + timedelta(minutes=1))

    assert store.deliver_signal(run_id, "go", "{}").status is DELIVERED


def test_an_expired_older_waiter_is_skipped_for_a_live_one(
    store: FlowSignalStore, run_id: UUID, clock: FakeClock
) -> None:
    store.register_waiter(run_id, "old", "go", clock.now + timedelta(minutes=1))
    clock.advance(seconds=1)
    store.register_waiter(run_id, "young", "go", clock.now + timedelta(hours=1))
    clock.advance(minutes=5)

    result = store.deliver_signal(run_id, "go", "{}")

    assert (result.status, result.step_key) == (DELIVERED, "young")
    old = store.get_waiter(run_id, "old")
    assert old is not None and old.delivered_at is None


def test_expired_reports_the_oldest_expired_waiter(
    store: FlowSignalStore, run_id: UUID, clock: FakeClock
) -> None:
    store.register_waiter(run_id, "b", "go", clock.now + timedelta(minutes=2))
    clock.advance(seconds=1)
    first_deadline = clock.stored_now + timedelta(minutes=1)
    store.register_waiter(run_id, "a", "go", first_deadline)
    clock.advance(minutes=3)

    result = store.deliver_signal(run_id, "go", "{}")

    assert result == SignalDeliveryResult(
        status=EXPIRED, step_key="b", expires_at=result.expires_at
    )
    assert result.expires_at is not None and result.expires_at > first_deadline


def test_already_delivered_wins_over_expired(
    store: FlowSignalStore, run_id: UUID, clock: FakeClock
) -> None:
    store.register_waiter(run_id, "expired", "go", clock.now + timedelta(minutes=1))
    clock.advance(seconds=1)
    store.register_waiter(run_id, "delivered", "go", clock.now + timedelta(minutes=5))
    clock.advance(minutes=2)
    delivery = store.deliver_signal(run_id, "go", "{}")
    clock.advance(hours=1)  # now past both deadlines; the delivered one stays delivered

    result = store.deliver_signal(run_id, "go", "{}")

    assert result == SignalDeliveryResult(
        status=ALREADY_DELIVERED, step_key="delivered", delivered_at=delivery.delivered_at
    )


# --- idempotency keys --------------------------------------------------------------------


def test_a_retry_with_the_same_key_is_replayed_and_writes_nothing(
    store: FlowSignalStore, run_id: UUID, clock: FakeClock
) -> None:
    store.register_waiter(run_id, "first", "approve")
    clock.advance(seconds=1)
    store.register_waiter(run_id, "second", "approve")
    original = store.deliver_signal(run_id, "approve", '"click"', idempotency_key="req-1")
    clock.advance(seconds=30)

    retry = store.deliver_signal(run_id, "approve", '"retried click"', idempotency_key="req-1")

    assert retry == SignalDeliveryResult(
        status=DELIVERED, step_key="first", delivered_at=original.delivered_at, replayed=True
    )
    first, second = store.list_waiters(run_id)
    assert first.payload_json == '"click"' and first.idempotency_key == "req-1"
    assert second.delivered_at is None and second.payload_json is None


def test_another_key_is_a_new_delivery(store: FlowSignalStore, run_id: UUID) -> None:
    store.register_waiter(run_id, "first", "approve")
    store.register_waiter(run_id, "second", "approve")
    store.deliver_signal(run_id, "approve", "1", idempotency_key="req-1")

    result = store.deliver_signal(run_id, "approve", "2", idempotency_key="req-2")
    assert (result.status, result.step_key, result.replayed) == (DELIVERED, "second", False)

    third = store.deliver_signal(run_id, "approve", "3", idempotency_key="req-3")
    assert (third.status, third.step_key) == (ALREADY_DELIVERED, "first")


def test_a_key_is_replayed_from_whichever_waiter_took_it(
    store: FlowSignalStore, run_id: UUID, clock: FakeClock
) -> None:
    # The older waiter is expired when the keyed delivery lands on the younger one; its
    # deadline is then extended. The retry must not land on it.
    store.register_waiter(run_id, "older", "approve", clock.now + timedelta(seconds=1))
    clock.advance(seconds=1)
    store.register_waiter(run_id, "younger", "approve")
    clock.advance(seconds=5)
    original = store.deliver_signal(run_id, "approve", "1", idempotency_key="req-1")
    assert original.step_key == "younger"
    store.register_waiter(run_id, "older", "approve")

    retry = store.deliver_signal(run_id, "approve", "1", idempotency_key="req-1")

    assert retry == original.model_copy(update={"replayed": True})
    older = store.get_waiter(run_id, "older")
    assert older is not None and older.delivered_at is None


def test_a_key_is_matched_exactly(store: FlowSignalStore, run_id: UUID) -> None:
    store.register_waiter(run_id, "s", "go")
    store.deliver_signal(run_id, "go", "1", idempotency_key="Req-1")
    assert store.deliver_signal(run_id, "go", "1", idempotency_key="req-1").status is (
        ALREADY_DELIVERED
    )
    assert store.deliver_signal(run_id, "go", "1").status is ALREADY_DELIVERED


def test_an_unkeyed_delivery_is_never_a_replay(store: FlowSignalStore, run_id: UUID) -> None:
    store.register_waiter(run_id, "s", "go")
    store.deliver_signal(run_id, "go", "1")
    result = store.deliver_signal(run_id, "go", "1")
    assert (result.status, result.replayed) == (ALREADY_DELIVERED, False)


def test_a_replay_needs_the_signal_name_to_match(store: FlowSignalStore, run_id: UUID) -> None:
    store.register_waiter(run_id, "a", "approve")
    store.register_waiter(run_id, "b", "reject")
    store.deliver_signal(run_id, "approve", "1", idempotency_key="req-1")

    result = store.deliver_signal(run_id, "reject", "1", idempotency_key="req-1")

    assert (result.status, result.step_key, result.replayed) == (DELIVERED, "b", False)


# --- remove / list -----------------------------------------------------------------------


def test_remove_deletes_and_is_idempotent(store: FlowSignalStore, run_id: UUID) -> None:
    store.register_waiter(run_id, "s", "go")
    store.register_waiter(run_id, "kept", "go")

    store.remove_waiter(run_id, "s")
    store.remove_waiter(run_id, "s")
    store.remove_waiter(uuid4(), "never-there")

    assert store.get_waiter(run_id, "s") is None
    assert [w.step_key for w in store.list_waiters(run_id)] == ["kept"]


def test_a_removed_waiter_receives_nothing_and_can_come_back(
    store: FlowSignalStore, run_id: UUID, clock: FakeClock
) -> None:
    store.register_waiter(run_id, "s", "go")
    store.deliver_signal(run_id, "go", "1")
    store.remove_waiter(run_id, "s")
    assert store.deliver_signal(run_id, "go", "2").status is NOT_FOUND

    clock.advance(seconds=1)
    again = store.register_waiter(run_id, "s", "go")

    assert again.created_at == clock.stored_now and again.delivered_at is None
    assert store.deliver_signal(run_id, "go", "3").status is DELIVERED


def test_list_is_oldest_first_then_by_step_key(
    store: FlowSignalStore, run_id: UUID, clock: FakeClock
) -> None:
    store.register_waiter(run_id, "z", "go")
    clock.advance(milliseconds=1)
    store.register_waiter(run_id, "m", "go")
    store.register_waiter(run_id, "b", "other")
    clock.advance(seconds=1)
    store.register_waiter(run_id, "a", "go")
    store.register_waiter(uuid4(), "other-run", "go")

    waiters = store.list_waiters(run_id)

    assert [w.step_key for w in waiters] == ["z", "b", "m", "a"]
    assert all(w.run_id == str(run_id) for w in waiters)


def test_list_of_an_unknown_run_is_empty(store: FlowSignalStore) -> None:
    assert store.list_waiters(uuid4()) == []


def test_list_returns_a_run_larger_than_one_query_page(
    backend: Backend, run_id: UUID, clock: FakeClock
) -> None:
    # Six delivered waiters of ~250 KB each: 1.5 MB, more than one 1 MB DynamoDB page.
    store = backend.store
    for n in range(6):
        store.register_waiter(run_id, f"step-{n}", f"signal-{n}")
        clock.advance(milliseconds=1)
    payloads = [json.dumps({"n": n, "blob": "x" * 250_000}) for n in range(6)]
    for n, payload in enumerate(payloads):
        assert store.deliver_signal(run_id, f"signal-{n}", payload).status is DELIVERED

    waiters = store.list_waiters(run_id)

    assert [w.step_key for w in waiters] == [f"step-{n}" for n in range(6)]
    assert [w.payload_json for w in waiters] == payloads


# --- one signal's waiters ------------------------------------------------------------------


def test_list_by_signal_name_lists_that_name_only_oldest_first(
    store: FlowSignalStore, run_id: UUID, clock: FakeClock
) -> None:
    store.register_waiter(run_id, "z", "go")
    clock.advance(milliseconds=1)
    store.register_waiter(run_id, "b", "other")
    store.register_waiter(run_id, "m", " go ")
    store.register_waiter(run_id, "renamed", "go")
    store.register_waiter(run_id, "renamed", "other")
    store.register_waiter(uuid4(), "other-run", "go")
    store.deliver_signal(run_id, "go", '{"n": 1}')

    waiters = store.list_waiters(run_id, signal_name=" go")

    assert [w.step_key for w in waiters] == ["z", "m"]
    assert waiters[0].payload_json == '{"n": 1}'  # listed whole
    assert store.list_waiters(run_id, signal_name="Go") == []
    page = store.list_waiters_page(run_id, limit=1, signal_name="go")
    assert [w.step_key for w in page] == ["z"]
    rest = store.list_waiters_page(run_id, limit=5, after=page[0].position, signal_name="go")
    assert [w.step_key for w in rest] == ["m"]


def test_signal_waiters_are_what_a_delivery_decides_on_without_payloads(
    store: FlowSignalStore, run_id: UUID, clock: FakeClock
) -> None:
    store.register_waiter(run_id, "first", "go", clock.now + timedelta(hours=1), task_token="t")
    clock.advance(milliseconds=1)
    store.register_waiter(run_id, "second", "go")
    store.register_waiter(run_id, "elsewhere", "stop")
    store.deliver_signal(run_id, "go", '{"big": 1}', idempotency_key="k", delivered_by="ana")

    first, second = store.signal_waiters(run_id, " go ")

    assert (first.step_key, second.step_key) == ("first", "second")
    assert first.delivered_at is not None and first.idempotency_key == "k"
    assert first.expires_at == clock.stored_now - timedelta(milliseconds=1) + timedelta(hours=1)
    assert (first.payload_json, first.failure, first.delivered_by, first.task_token) == (
        None,
        None,
        None,
        None,
    )
    assert second.delivered_at is None
    assert store.signal_waiters(run_id, "absent") == []


@pytest.mark.parametrize(
    "call",
    [
        lambda store: store.signal_waiters("run", ""),
        lambda store: store.signal_waiters("", "go"),
        lambda store: store.list_waiters("run", signal_name="\x00"),
        lambda store: store.list_waiters_page("run", limit=1, signal_name=" "),
    ],
)
def test_a_bad_signal_name_to_read_is_invalid(store: FlowSignalStore, call: Any) -> None:
    with pytest.raises(InvalidSignalRequest):
        call(store)
