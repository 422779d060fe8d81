"""Per-key API rate limit: one token bucket per key in this API process, so a
client hammering the API gets 429s (with ``Retry-After``) instead of the
threads every other client's status polls need. With several API processes
behind a load balancer each holds its own buckets: the limit is per process."""

from __future__ import annotations

import threading
import time

from batchgate import config
from batchgate.domain import errors, rate_limit


class RateLimiter:
    def __init__(self, settings: config.RateLimitSettings) -> None:
        self.settings = settings
        self._buckets: dict[str, rate_limit.TokenBucket] = {}
        self._lock = threading.Lock()  # sync routes run on a thread pool

    def check(self, key_id: str) -> None:
        rate = self.settings.requests_per_second
        if not rate:
            return
        burst = self.settings.capacity
        with self._lock:
            bucket = self._buckets.setdefault(key_id, rate_limit.TokenBucket(rate, burst))
            wait = bucket.take(time.monotonic())
        if wait is not None:
            raise errors.RateLimited(
                f"Rate limit reached for requests on API key {key_id}: {rate:g} requests per "
                f"second with bursts of {burst:g}. Please try again in {wait:.2f}s.",
                retry_after=wait,
            )
