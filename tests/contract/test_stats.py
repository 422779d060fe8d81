"""The store's operator figures (per-model stats, batches by status), on every store."""

from __future__ import annotations

import time

import pytest

from batchgate.domain import batch as bm
from batchgate.domain.states import BatchStatus, RequestState
from batchgate.store import port
from tests.contract.builders import LEASE, make_batch, succeed


def test_model_stats_count_the_open_requests_of_each_model(store: port.JobStore) -> None:
    make_batch(store, 4, model="a")
    make_batch(store, 1, model="b")
    claimed = store.claim("a", 2, "w1", time.time(), LEASE)
    succeed(store, claimed[0])
    stats = {entry.model: entry for entry in store.model_stats(time.time())}
    assert set(stats) == {"a", "b"}
    assert stats["a"].by_state == {RequestState.QUEUED: 2, RequestState.RUNNING: 1}
    assert stats["a"].recent == {RequestState.SUCCEEDED: 1}
    assert (stats["a"].queued, stats["a"].in_flight) == (2, 1)
    assert stats["b"].by_state == {RequestState.QUEUED: 1}


def test_model_stats_sum_tokens_and_cost_of_requests_ended_in_the_window(
    store: port.JobStore,
) -> None:
    make_batch(store, 3)
    for claimed in store.claim("m", 2, "w1", time.time(), LEASE):
        succeed(store, claimed)
    (entry,) = store.model_stats(time.time())
    assert (entry.input_tokens, entry.output_tokens) == (4, 6)
    assert entry.cost == pytest.approx(1.0)
    # Once they are out of the window only the open request is left.
    (later,) = store.model_stats(time.time() + 600, window_seconds=60)
    assert (later.by_state, later.input_tokens, later.cost) == ({RequestState.QUEUED: 1}, 0, 0.0)


def test_model_stats_count_only_recent_endings_in_the_window(store: port.JobStore) -> None:
    make_batch(store, 2)
    claimed = store.claim("m", 2, "w1", time.time(), LEASE)
    succeed(store, claimed[0])
    store.record_outcomes(
        [bm.Outcome(claimed[1].id, claimed[1].attempt, "w1", RequestState.ERRORED)],
        time.time(),
    )
    (now_entry,) = store.model_stats(time.time(), window_seconds=60)
    assert now_entry.recent == {RequestState.SUCCEEDED: 1, RequestState.ERRORED: 1}
    assert now_entry.error_rate == pytest.approx(0.5)
    # Out of the window, a model with nothing open has nothing to show.
    assert store.model_stats(time.time() + 120, window_seconds=60) == []


def test_model_stats_tell_backing_off_requests_and_oldest_queued(
    store: port.JobStore,
) -> None:
    first = make_batch(store, 2, created_at=time.time() - 100)
    make_batch(store, 1)
    claimed = store.claim("m", 1, "w1", time.time(), LEASE)[0]
    store.record_outcomes(
        [
            bm.Outcome(
                claimed.id,
                claimed.attempt,
                "w1",
                RequestState.QUEUED,
                not_before=time.time() + 60,
            )
        ],
        time.time(),
    )
    now = time.time()
    (entry,) = store.model_stats(now)
    assert entry.retry_waiting == 1
    assert entry.queued == 3
    assert entry.oldest_queued_at == pytest.approx(first.created_at)
    assert entry.oldest_queued_age(now) >= 100


def test_model_stats_of_one_owner_leave_out_other_keys(store: port.JobStore) -> None:
    make_batch(store, 2, owner="key_a")
    make_batch(store, 5, owner="key_b", created_at=time.time() - 50)
    (mine,) = store.model_stats(time.time(), owner="key_a")
    assert mine.queued == 2
    assert mine.oldest_queued_age(time.time()) < 50
    assert store.model_stats(time.time(), owner="nobody") == []


def test_batch_status_counts_group_batches_by_status(store: port.JobStore) -> None:
    make_batch(store, 2)
    make_batch(store, 1)
    cancelled = make_batch(store, 1, owner="key_b")
    store.cancel_batch(cancelled.id, "key_b", time.time())
    store.finalize_batches(time.time())
    assert store.batch_status_counts() == {BatchStatus.IN_PROGRESS: 2, BatchStatus.CANCELLED: 1}
    assert store.batch_status_counts(owner="key_b") == {BatchStatus.CANCELLED: 1}


def test_a_migrated_store_is_at_the_newest_revision(store: port.JobStore) -> None:
    current, head = store.schema_revision()
    assert current == head
