"""Per-key API rate limit: one token bucket per key in this API process, so a
client hammering the API gets 429s (with ``Retry-After``) instead of the
threads every other client's status polls need. With several API processes
behind a load balancer each holds its own buckets: the limit is per process.

A key is known only after it is looked up, so calls whose key fails (or a
dashboard session that does) are counted per client address in a small
bucket of their own. That bucket is spent and checked only once a key has
failed: a key that verifies is never refused for its neighbours' failures
(one NAT or proxy can carry many tenants, and one of them guessing keys must
not lock the others out). Past it, a failed key gets 429 instead of 401.

What this bounds is the rate of failed answers an address gets and logs,
not guessing as such: no limit can refuse a wrong key from an address while
accepting a right one from it without looking the key up. The lookup is
cheap (an indexed prefix read, one SHA-256, a constant-time compare), and
what keeps guessing hopeless is the key itself, 256 random bits."""

from __future__ import annotations

import threading
import time

from batchgate import config
from batchgate.domain import errors, rate_limit

# Client addresses with a failed-auth bucket kept at once; past this the
# refilled buckets (no different from new ones) go, then the oldest.
_MAX_CLIENTS = 10_000


class RateLimiter:
    def __init__(self, settings: config.RateLimitSettings) -> None:
        self.settings = settings
        self._buckets: dict[str, rate_limit.TokenBucket] = {}
        self._clients: dict[str, rate_limit.TokenBucket] = {}
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

    def _too_many_failures(self, client: str, wait: float) -> errors.RateLimited:
        rate = self.settings.failed_auth_per_second
        return errors.RateLimited(
            f"Too many failed authentications from {client or 'this client'}: "
            f"{rate:g} a second with bursts of {self.settings.failed_auth_burst:g}. "
            f"Check the API key; please try again in {wait:.2f}s.",
            retry_after=wait,
        )

    def client_wait(self, client: str) -> float | None:
        """Seconds until ``client`` may try a key again; None: now."""
        if not self.settings.failed_auth_per_second:
            return None
        with self._lock:
            bucket = self._clients.get(client)
            return bucket.wait(time.monotonic()) if bucket else None

    def failed(self, client: str) -> None:
        """Count one failed authentication from ``client``; past its budget,
        raise a 429 for it (instead of the 401 the caller would raise)."""
        rate = self.settings.failed_auth_per_second
        if not rate:
            return
        now = time.monotonic()
        with self._lock:
            bucket = self._clients.get(client)
            if bucket is None:
                if len(self._clients) >= _MAX_CLIENTS:
                    self._forget_clients(now)
                bucket = rate_limit.TokenBucket(rate, self.settings.failed_auth_burst)
                self._clients[client] = bucket
            wait = bucket.take(now)
        if wait is not None:
            raise self._too_many_failures(client, wait)

    def _forget_clients(self, now: float) -> None:
        for client in [c for c, bucket in self._clients.items() if bucket.is_full(now)]:
            del self._clients[client]
        while len(self._clients) >= _MAX_CLIENTS:  # the oldest first
            del self._clients[next(iter(self._clients))]
