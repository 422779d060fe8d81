"""The batch contract (port.BatchStore): what a batch holds and reports,
cancel, unique custom_ids, listing, and reading its requests back."""

from __future__ import annotations

import time

import pytest

from batchgate.domain import batch as bm
from batchgate.domain import errors, failures
from batchgate.domain.states import BatchStatus, Dialect, RequestState
from batchgate.store import port, sql
from tests.contract.builders import LEASE, make_batch, succeed


def test_a_batch_has_the_model_its_requests_name(store: port.JobStore) -> None:
    stored = store.get_batch(make_batch(store, 2, model="m1").id)
    assert stored is not None and stored.model == "m1"


def test_batch_usage_sums_cached_and_reasoning_tokens(store: port.JobStore) -> None:
    batch = make_batch(store, 2)
    for claimed in store.claim("m", 2, "w1", time.time(), LEASE):
        outcome = bm.Outcome(
            claimed.id,
            claimed.attempt,
            "w1",
            RequestState.SUCCEEDED,
            result={},
            input_tokens=10,
            output_tokens=7,
            cached_tokens=4,
            reasoning_tokens=3,
        )
        assert store.record_outcomes([outcome], time.time()) == [True]
    usage = store.tally(batch.id).usage()
    assert usage["input_tokens_details"] == {"cached_tokens": 8}
    assert usage["output_tokens_details"] == {"reasoning_tokens": 6}
    assert (usage["input_tokens"], usage["output_tokens"], usage["total_tokens"]) == (20, 14, 34)


def test_results_carry_their_request_params_only_when_asked(store: port.JobStore) -> None:
    batch = make_batch(store, 2)
    assert [row.params for row in store.iter_results(batch.id)] == [None, None]
    assert [row.params for row in store.iter_results(batch.id, with_params=True)] == ["{}", "{}"]


def test_cancel_keeps_finished_results_and_counts_add_up(store: port.JobStore) -> None:
    batch = make_batch(store, 4)
    claimed = store.claim("m", 2, "w1", time.time(), LEASE)
    succeed(store, claimed[0])
    cancelling = store.cancel_batch(batch.id, "key_a", time.time())
    assert cancelling is not None and cancelling.status is BatchStatus.CANCELLING
    assert succeed(store, claimed[1]) is False  # its lease ended with the cancel
    store.finalize_batches(time.time())
    done = store.get_batch(batch.id)
    assert done is not None and done.status is BatchStatus.CANCELLED
    assert done.tally.count(RequestState.SUCCEEDED) == 1
    assert done.tally.count(RequestState.CANCELED) == 3
    assert done.tally.total == 4


def test_cancel_by_another_owner_finds_nothing(store: port.JobStore) -> None:
    batch = make_batch(store, 1)
    assert store.cancel_batch(batch.id, "key_b", time.time()) is None
    assert store.get_batch(batch.id, "key_b") is None


def test_custom_ids_are_unique_within_a_batch(store: port.JobStore) -> None:
    now = time.time()
    batch = bm.Batch(
        id="batch_dup",
        owner="key_a",
        dialect=Dialect.NATIVE,
        endpoint="/v1/messages",
        input_file_id=None,
        completion_window="24h",
        metadata=None,
        status=BatchStatus.IN_PROGRESS,
        errors=None,
        total=2,
        created_at=now,
        expires_at=now + 60,
    )
    with pytest.raises(errors.Conflict):
        store.create_batch(batch, [bm.NewRequest("same", "m", "{}")] * 2)
    assert store.get_batch("batch_dup") is None  # nothing half-stored


def test_list_is_newest_first_with_cursor_and_owner_scope(store: port.JobStore) -> None:
    base = time.time()
    made = [make_batch(store, 1, created_at=base + i) for i in range(5)]
    make_batch(store, 1, owner="key_b")
    page, more = store.list_batches("key_a", limit=2)
    assert [b.id for b in page] == [made[4].id, made[3].id] and more
    page, more = store.list_batches("key_a", limit=10, after=made[3].id)
    assert [b.id for b in page] == [made[2].id, made[1].id, made[0].id] and not more
    page, _ = store.list_batches("key_a", limit=2, before=made[1].id)
    assert [b.id for b in page] == [made[3].id, made[2].id]


def test_list_without_an_owner_pages_through_every_keys_batches(
    store: port.JobStore,
) -> None:
    base = time.time()
    mine = make_batch(store, 1, created_at=base)
    theirs = make_batch(store, 1, owner="key_b", created_at=base + 1)
    newest = make_batch(store, 1, created_at=base + 2)
    page, more = store.list_batches(None, limit=2)
    assert [b.id for b in page] == [newest.id, theirs.id] and more
    page, more = store.list_batches(None, limit=2, after=theirs.id)
    assert [b.id for b in page] == [mine.id] and not more


def test_iter_requests_yields_rows_of_the_given_states_as_submitted(
    store: sql.SqlJobStore,
) -> None:
    batch = make_batch(store, 3)
    first, _second, third = store.claim("m", 3, "w1", time.time(), LEASE)
    succeed(store, first)
    error = failures.RequestError(failures.ErrorType.RATE_LIMIT, "slow down")
    store.record_outcomes(
        [bm.Outcome(third.id, third.attempt, "w1", RequestState.ERRORED, error=error)],
        time.time(),
    )
    rows = list(store.iter_requests(batch.id, [RequestState.ERRORED, RequestState.RUNNING]))
    assert [(r.custom_id, r.model, r.params, r.state, r.error) for r in rows] == [
        ("r1", "m", "{}", RequestState.RUNNING, None),
        ("r2", "m", "{}", RequestState.ERRORED, error),
    ]
