"""The store's operator figures (per-model stats, batches by status), on every store."""

from __future__ import annotations

import time

import pytest

from batchgate.domain import batch as bm
from batchgate.domain import upstream_jobs as uj
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


def _end(
    store: port.JobStore,
    claimed: bm.ClaimedRequest,
    route: str | None,
    cost: float,
    state: RequestState = RequestState.SUCCEEDED,
) -> None:
    outcome = bm.Outcome(claimed.id, claimed.attempt, "w1", state, cost=cost, route=route)
    assert store.record_outcomes([outcome], time.time()) == [True]


def test_path_costs_sum_what_each_path_served_per_provider_batch_model(
    store: port.JobStore,
) -> None:
    since = time.time()
    make_batch(store, 5, model="pb")
    make_batch(store, 1, model="plain")
    claimed: list[bm.ClaimedRequest] = []
    for _ in range(5):  # fair claiming may hand them out a few at a time
        claimed += store.claim("pb", 5 - len(claimed), "w1", time.time(), LEASE)
    first, second, third, fourth, fifth = claimed
    _end(store, first, uj.Path.BATCH.value, 0.25)
    _end(store, second, uj.Path.BATCH.value, 0.5)
    _end(store, third, uj.Path.BATCH.value, 0.0, RequestState.ERRORED)
    _end(store, fourth, uj.Path.REALTIME.value, 0.125)
    # Ended without being served (expired in the job): not a path's work.
    _end(store, fifth, uj.Path.BATCH.value, 0.0, RequestState.EXPIRED)
    # A model of no provider batch API has no route: not counted.
    (plain,) = store.claim("plain", 1, "w1", time.time(), LEASE)
    _end(store, plain, None, 1.0)
    batch_path, realtime = store.path_costs(since)
    assert (batch_path.model, batch_path.path, batch_path.requests) == ("pb", uj.Path.BATCH, 3)
    assert batch_path.tenant_billed == pytest.approx(0.75)
    assert batch_path.operator_cost == pytest.approx(0.75)
    assert (realtime.model, realtime.path, realtime.requests) == ("pb", uj.Path.REALTIME, 1)
    assert realtime.tenant_billed == pytest.approx(0.125)
    assert realtime.operator_cost == pytest.approx(0.25)  # the list price: twice the bill


def test_path_costs_leave_out_what_ended_before_the_window(store: port.JobStore) -> None:
    make_batch(store, 1, model="pb")
    (claimed,) = store.claim("pb", 1, "w1", time.time(), LEASE)
    _end(store, claimed, uj.Path.BATCH.value, 0.5)
    assert [entry.requests for entry in store.path_costs(time.time() - 60)] == [1]
    assert store.path_costs(time.time() + 60) == []
