"""The token bucket behind the per-key API rate limit."""

from __future__ import annotations

import pytest

from batchgate.domain import rate_limit


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
