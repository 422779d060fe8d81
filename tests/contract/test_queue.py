"""The queue contract (port.QueueStore): claims lease each request once and
fairly, heartbeats extend only held leases, outcome writes are fenced on
the lease, and a lost lease is retried or errors."""

from __future__ import annotations

import time

from batchgate.domain import batch as bm
from batchgate.domain import failures, retry
from batchgate.domain.states import RequestState
from batchgate.store import port
from tests.contract.builders import LATER, LEASE, make_batch, succeed, taken_concurrently


def test_claim_leases_each_request_once(store: port.JobStore) -> None:
    make_batch(store, 5)
    now = time.time()
    first = store.claim("m", 3, "w1", now, LEASE)
    second = store.claim("m", 3, "w2", now, LEASE)
    assert [c.custom_id for c in first] == ["r0", "r1", "r2"]
    assert [c.custom_id for c in second] == ["r3", "r4"]
    assert store.claim("m", 3, "w3", now, LEASE) == []


def test_claim_only_takes_the_requested_model(store: port.JobStore) -> None:
    make_batch(store, 2, model="other")
    assert store.claim("m", 5, "w1", time.time(), LEASE) == []
    assert len(store.claim("other", 5, "w1", time.time(), LEASE)) == 2


def test_concurrent_claims_never_share_a_request(store: port.JobStore) -> None:
    make_batch(store, 200)
    seen = taken_concurrently(
        lambda worker: (c.id for c in store.claim("m", 7, worker, time.time(), LEASE))
    )
    assert len(seen) == 200
    assert len(set(seen)) == 200


def test_result_write_is_fenced_on_the_lease(store: port.JobStore) -> None:
    make_batch(store, 1)
    stale = store.claim("m", 1, "w1", time.time(), lease_seconds=0.01)[0]
    later = time.time() + LATER
    assert store.requeue_lost_leases(later, retry.RetryPolicy(max_attempts=5)) == 1
    fresh = store.claim("m", 1, "w2", later, LEASE)[0]
    assert fresh.attempt == 2
    assert succeed(store, stale, worker="w1") is False
    assert succeed(store, fresh, worker="w2") is True
    rows = list(store.iter_results(stale.batch_id))
    assert [(r.state, r.result) for r in rows] == [(RequestState.SUCCEEDED, {"ok": "r0"})]


def test_lost_lease_after_last_attempt_errors(store: port.JobStore) -> None:
    batch = make_batch(store, 1)
    store.claim("m", 1, "w1", time.time(), lease_seconds=0.01)
    store.requeue_lost_leases(time.time() + LATER, retry.RetryPolicy(max_attempts=1))
    (row,) = store.iter_results(batch.id)
    assert row.state is RequestState.ERRORED
    assert row.error is not None and "lost" in row.error.message


def test_heartbeat_extends_only_held_leases(store: port.JobStore) -> None:
    make_batch(store, 2)
    claimed = store.claim("m", 2, "w1", time.time(), lease_seconds=0.05)
    ids = [c.id for c in claimed]
    assert store.extend_leases("w1", ids, time.time(), LEASE) == set(ids)
    assert store.requeue_lost_leases(time.time() + LATER, retry.RetryPolicy(max_attempts=5)) == 0
    assert store.extend_leases("w2", ids, time.time(), LEASE) == set()


def test_heartbeat_lets_the_lease_of_an_abandoned_request_run_out(
    store: port.JobStore,
) -> None:
    make_batch(store, 2)
    kept, abandoned = store.claim("m", 2, "w1", time.time(), lease_seconds=0.05)
    assert store.extend_leases("w1", [kept.id], time.time(), LEASE) == {kept.id}
    later = time.time() + LATER
    assert store.requeue_lost_leases(later, retry.RetryPolicy(max_attempts=5)) == 1
    again = store.claim("m", 2, "w2", later, LEASE)
    assert [c.id for c in again] == [abandoned.id]


def test_retry_outcome_requeues_not_before(store: port.JobStore) -> None:
    make_batch(store, 1)
    claimed = store.claim("m", 1, "w1", time.time(), LEASE)[0]
    later = time.time() + 60
    store.record_outcomes(
        [
            bm.Outcome(
                claimed.id,
                claimed.attempt,
                "w1",
                RequestState.QUEUED,
                error=failures.RequestError(failures.ErrorType.RATE_LIMIT, "429"),
                not_before=later,
            )
        ],
        time.time(),
    )
    assert store.claim("m", 1, "w1", time.time(), LEASE) == []
    again = store.claim("m", 1, "w1", later + 1, LEASE)
    assert [c.attempt for c in again] == [2]


def test_fair_claim_serves_small_batch_beside_big_one(store: port.JobStore) -> None:
    make_batch(store, 100, owner="key_a", created_at=time.time() - 10)
    small = make_batch(store, 3, owner="key_b")
    got = store.claim("m", 6, "w1", time.time(), LEASE)
    assert sum(1 for c in got if c.batch_id == small.id) == 3


def test_a_claimed_request_counts_as_generating_once_its_worker_marks_it(
    store: port.JobStore,
) -> None:
    batch_id = make_batch(store, 4).id
    first, second, third = store.claim("m", 3, "w1", time.time(), lease_seconds=0.05)
    store.mark_generating("w1", [first.id, second.id], time.time())
    store.mark_generating("w2", [third.id], time.time())  # not its lease: ignored
    tally = store.tally(batch_id)
    assert (tally.count(RequestState.RUNNING), tally.generating, tally.claimed) == (3, 2, 1)

    # A new claim of a requeued request is claimed again, not generating.
    later = time.time() + LATER
    assert store.requeue_lost_leases(later, retry.RetryPolicy(max_attempts=5)) == 3
    store.claim("m", 4, "w2", later, LEASE)
    tally = store.tally(batch_id)
    assert (tally.count(RequestState.RUNNING), tally.generating, tally.claimed) == (4, 0, 4)
