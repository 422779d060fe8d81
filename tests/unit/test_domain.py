"""Pure domain rules: transitions, fairness, retry timing, counts."""

from __future__ import annotations

import random

from batchgate.domain import fairness, retry
from batchgate.domain.counts import StateTally
from batchgate.domain.retry import RetryPolicy
from batchgate.domain.states import BatchStatus, RequestState, can_transition


def test_ended_batches_never_change_again() -> None:
    for status in (
        BatchStatus.COMPLETED,
        BatchStatus.CANCELLED,
        BatchStatus.EXPIRED,
        BatchStatus.FAILED,
    ):
        assert status.is_ended
        assert not any(can_transition(status, target) for target in BatchStatus)


def test_in_progress_is_cancelled_only_through_cancelling() -> None:
    assert can_transition(BatchStatus.IN_PROGRESS, BatchStatus.CANCELLING)
    assert not can_transition(BatchStatus.IN_PROGRESS, BatchStatus.CANCELLED)


def test_fair_shares_alternate_between_owners() -> None:
    candidates = [
        fairness.Candidate("big1", "alice", 1.0),
        fairness.Candidate("big2", "alice", 2.0),
        fairness.Candidate("small", "bob", 5.0),
    ]
    shares = fairness.fair_shares(candidates, 6)
    assert shares["small"] == 3
    assert shares["big1"] + shares["big2"] == 3


def test_fair_shares_least_recently_served_owner_goes_first() -> None:
    candidates = [fairness.Candidate("a", "alice", 9.0), fairness.Candidate("b", "bob", 1.0)]
    assert fairness.fair_shares(candidates, 1) == {"b": 1}


def test_backoff_is_jittered_below_the_exponential_ceiling() -> None:
    policy = RetryPolicy(max_attempts=5, base_seconds=1.0, max_seconds=60.0)
    rng = random.Random(7)
    delays = [policy.backoff(3, rng=rng) for _ in range(200)]
    assert all(0.0 <= d <= 4.0 for d in delays)
    assert max(delays) > 2.0 and min(delays) < 1.0  # full jitter spreads over the range


def test_backoff_never_undercuts_retry_after() -> None:
    policy = RetryPolicy(base_seconds=0.1, max_seconds=0.2)
    assert all(policy.backoff(1, retry_after=7.5) >= 7.5 for _ in range(50))


def test_retry_stops_at_max_attempts_and_on_final_errors() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert isinstance(policy.decide(retry.Failure(retryable=True), 2), retry.RetryAt)
    assert policy.decide(retry.Failure(retryable=True), 3) is retry.GIVE_UP
    assert policy.decide(retry.Failure(retryable=False), 1) is retry.GIVE_UP


def test_tally_failed_counts_every_unsuccessful_end() -> None:
    tally = StateTally(
        by_state={
            RequestState.SUCCEEDED: 2,
            RequestState.ERRORED: 1,
            RequestState.CANCELED: 3,
            RequestState.EXPIRED: 4,
            RequestState.QUEUED: 5,
        }
    )
    assert tally.failed == 8
    assert tally.open == 5
    assert tally.total == 15
