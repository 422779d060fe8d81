"""The one retry decision, for every way an attempt fails."""

from __future__ import annotations

import random

from batchgate.domain import retry

POLICY = retry.RetryPolicy(max_attempts=3, base_seconds=1.0, max_seconds=60.0)
RETRYABLE = retry.Failure(retryable=True)


def test_a_final_failure_gives_up_at_once() -> None:
    assert POLICY.decide(retry.Failure(retryable=False), 1) is retry.GIVE_UP


def test_a_retryable_failure_retries_within_the_backoff_ceiling() -> None:
    decision = POLICY.decide(RETRYABLE, 2, rng=random.Random(7))
    assert isinstance(decision, retry.RetryAt)
    assert 0.0 <= decision.delay <= 2.0 and not decision.refund_attempt


def test_a_retry_is_never_sooner_than_retry_after() -> None:
    decision = POLICY.decide(retry.Failure(retryable=True, retry_after=30.0), 1)
    assert isinstance(decision, retry.RetryAt) and decision.delay >= 30.0


def test_the_last_attempt_gives_up() -> None:
    assert POLICY.decide(RETRYABLE, 3) is retry.GIVE_UP


def test_a_probe_through_an_open_breaker_is_refunded_and_waits_for_the_breaker() -> None:
    breaker = retry.Breaker(was_open=True, pause_left=4.0)
    assert POLICY.decide(RETRYABLE, 3, breaker) == retry.RetryAt(4.0, refund_attempt=True)


def test_a_final_failure_gives_up_even_through_an_open_breaker() -> None:
    breaker = retry.Breaker(was_open=True, pause_left=4.0)
    assert POLICY.decide(retry.Failure(retryable=False), 1, breaker) is retry.GIVE_UP


def test_a_lost_lease_is_retried_at_once_until_the_last_attempt() -> None:
    assert POLICY.decide(retry.LOST_LEASE, 1) == retry.RetryAt(0.0)
    assert POLICY.decide(retry.LOST_LEASE, 3) is retry.GIVE_UP
