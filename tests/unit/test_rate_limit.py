"""The token bucket behind the per-key API rate limit, and the per-address
limit on failed authentications."""

from __future__ import annotations

import pytest

from batchgate import config
from batchgate.domain import errors, rate_limit
from batchgate.services import rate_limit as rate_limit_service
from batchgate.services.rate_limit import RateLimiter


def test_a_full_bucket_allows_a_burst_then_refuses() -> None:
    bucket = rate_limit.TokenBucket(rate=2.0, burst=3.0)
    assert [bucket.take(10.0) for _ in range(3)] == [None, None, None]
    assert bucket.take(10.0) == pytest.approx(0.5)  # one token comes back in 1/rate s


def test_tokens_refill_at_the_rate() -> None:
    bucket = rate_limit.TokenBucket(rate=2.0, burst=3.0)
    for _ in range(3):
        bucket.take(0.0)
    assert bucket.take(0.25) == pytest.approx(0.25)  # half a token so far
    assert bucket.take(0.5) is None


def test_refill_never_exceeds_the_burst() -> None:
    bucket = rate_limit.TokenBucket(rate=100.0, burst=2.0)
    bucket.take(0.0)
    results = [bucket.take(1000.0) for _ in range(3)]
    assert results[:2] == [None, None] and results[2] is not None


def test_wait_says_when_a_token_comes_without_spending_one() -> None:
    bucket = rate_limit.TokenBucket(rate=2.0, burst=2.0)
    assert bucket.wait(0.0) is None and bucket.is_full(0.0)  # new: full
    bucket.take(0.0)
    bucket.take(0.0)
    assert bucket.wait(0.0) == pytest.approx(0.5)
    assert bucket.wait(0.0) == pytest.approx(0.5)  # still: nothing was spent
    assert bucket.wait(0.5) is None and not bucket.is_full(0.5)
    assert bucket.is_full(1.0)


def test_failed_authentications_are_counted_per_client_address() -> None:
    limiter = RateLimiter(config.RateLimitSettings(failed_auth_per_second=1, failed_auth_burst=2))
    assert limiter.client_wait("10.0.0.1") is None  # nothing failed yet
    limiter.failed("10.0.0.1")
    limiter.failed("10.0.0.1")
    with pytest.raises(errors.RateLimited) as refused:
        limiter.failed("10.0.0.1")  # past the budget: 429, not 401
    assert refused.value.retry_after is not None and 0 < refused.value.retry_after <= 1
    assert limiter.client_wait("10.0.0.1") is not None
    limiter.failed("10.0.0.2")  # another address is not held back


def test_the_addresses_kept_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rate_limit_service, "_MAX_CLIENTS", 3)
    limiter = RateLimiter(config.RateLimitSettings(failed_auth_per_second=1, failed_auth_burst=1))
    for n in range(10):
        limiter.failed(f"10.0.0.{n}")
    assert len(limiter._clients) <= 3
    assert limiter.client_wait("10.0.0.9") is not None  # the newest are kept


def test_no_failed_auth_limit_when_its_rate_is_zero() -> None:
    limiter = RateLimiter(config.RateLimitSettings(failed_auth_per_second=0))
    for _ in range(100):
        limiter.failed("10.0.0.1")
    assert limiter.client_wait("10.0.0.1") is None
