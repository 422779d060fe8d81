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


def test_a_request_handed_back_unstarted_goes_back_at_once_keeping_its_attempt() -> None:
    # Even on its last attempt: it was never tried.
    assert POLICY.decide(retry.NOT_STARTED, 3) == retry.RetryAt(0.0, refund_attempt=True)


DEADLINED = retry.RetryPolicy(max_attempts=None, base_seconds=10.0, deadline_seconds=100.0)


def test_without_an_attempt_cap_the_deadline_decides() -> None:
    assert isinstance(DEADLINED.decide(RETRYABLE, 1000, elapsed=50.0), retry.RetryAt)
    assert DEADLINED.decide(RETRYABLE, 2, elapsed=100.0) is retry.GIVE_UP


def test_a_retry_is_never_scheduled_past_the_deadline() -> None:
    # Retry-After asks for 60 s, but only 5 are left: the last try comes first.
    late = retry.Failure(retryable=True, retry_after=60.0)
    assert DEADLINED.decide(late, 3, elapsed=95.0) == retry.RetryAt(5.0)


def test_an_open_breaker_waits_no_longer_than_the_deadline() -> None:
    breaker = retry.Breaker(was_open=True, pause_left=30.0)
    decision = DEADLINED.decide(RETRYABLE, 1, breaker, elapsed=90.0)
    assert decision == retry.RetryAt(10.0, refund_attempt=True)
