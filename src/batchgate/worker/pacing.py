"""Per-model pacing: rate limits, overload back-off, and the down-upstream breaker.

All of it is per worker process (limits configured on a model apply to each
worker that serves it; run one worker per rate-limited upstream, or divide).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import math
import random
import time
from collections.abc import Callable

from batchgate.domain import retry

# Requests are counted over the period plus this margin, so that jitter in
# delivery cannot squeeze one extra call into any window the upstream sees.
WINDOW_MARGIN_SECONDS = 0.5


@dataclasses.dataclass
class _Grant:
    at: float
    tokens: int


class SlidingWindowLimiter:
    """At most ``max_requests`` calls and ``max_tokens`` tokens in any window of
    ``period`` seconds. Exact (a log of grants), not a token bucket, so the
    guarantee holds for every window, not on average."""

    def __init__(
        self,
        max_requests: int | None,
        max_tokens: int | None,
        period: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_requests = max_requests
        self.max_tokens = max_tokens
        self.period = period + WINDOW_MARGIN_SECONDS
        self._grants: collections.deque[_Grant] = collections.deque()
        self._lock = asyncio.Lock()
        self._settled = asyncio.Event()
        self._clock = clock

    @property
    def enabled(self) -> bool:
        return self.max_requests is not None or self.max_tokens is not None

    def _prune(self, now: float) -> None:
        while self._grants and self._grants[0].at <= now - self.period:
            self._grants.popleft()

    def delay(self, now: float, tokens: int) -> float:
        """Seconds from ``now`` until a call of ``tokens`` fits (0: it fits)."""
        self._prune(now)
        waits = [0.0]
        if self.max_requests is not None and len(self._grants) >= self.max_requests:
            oldest = self._grants[len(self._grants) - self.max_requests]
            waits.append(oldest.at + self.period - now)
        if self.max_tokens is not None:
            tokens = min(tokens, self.max_tokens)  # a huge request still runs, alone
            used = sum(grant.tokens for grant in self._grants)
            excess = used + tokens - self.max_tokens
            for grant in self._grants:
                if excess <= 0:
                    break
                excess -= grant.tokens
                waits.append(grant.at + self.period - now)
        return max(waits)

    async def acquire(self, tokens: int) -> _Grant:
        """Wait until a call of ``tokens`` fits; returns the grant, whose
        ``tokens`` the caller corrects with the real usage afterwards."""
        async with self._lock:  # FIFO: the lock queues waiters in order
            while True:
                now = self._clock()
                wait = self.delay(now, tokens)
                if wait <= 0:
                    grant = _Grant(now, tokens)
                    self._grants.append(grant)
                    return grant
                # Sleep until the window frees room, or until a settled grant
                # (real usage below its estimate) may already have made some.
                self._settled.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._settled.wait(), wait)

    def settle(self, grant: _Grant, real_tokens: int) -> None:
        grant.tokens = real_tokens
        self._settled.set()


class ModelThrottle:
    """How many calls a model may have in flight right now, and when.

    Overload (429/529) halves the allowed concurrency and pauses new calls
    until the upstream's Retry-After; each success adds back a little
    (additive increase), so throughput recovers gradually instead of
    stampeding. A run of failures of any retryable kind opens a breaker: the
    upstream is treated as down, and only one probe call at a time goes out
    until one succeeds. Every pause is the one backoff
    (:meth:`retry.RetryPolicy.backoff`, full jitter, so workers that saw the
    same outage do not probe it in step): an overload's from ``pauses``'
    base, the breaker's doubling with each failed probe up to its maximum.
    """

    BREAKER_THRESHOLD = 5
    PAUSES = retry.RetryPolicy(base_seconds=1.0, max_seconds=30.0)

    def __init__(
        self,
        max_concurrency: int,
        pauses: retry.RetryPolicy = PAUSES,
        rng: random.Random | None = None,
    ) -> None:
        self.max_concurrency = max_concurrency
        self.allowed = float(max_concurrency)
        self.paused_until = 0.0
        self.consecutive_failures = 0
        self._pauses = pauses
        self._rng = rng

    @property
    def breaker_open(self) -> bool:
        return self.consecutive_failures >= self.BREAKER_THRESHOLD

    def capacity(self, inflight: int, now: float) -> int:
        """How many more calls may start now."""
        if now < self.paused_until:
            return 0
        limit = 1 if self.breaker_open else max(1, math.floor(self.allowed))
        return max(0, limit - inflight)

    def on_success(self) -> None:
        self.consecutive_failures = 0
        self.allowed = min(float(self.max_concurrency), self.allowed + 1.0 / max(self.allowed, 1))

    def on_failure(self, *, overloaded: bool, retry_after: float | None, now: float) -> None:
        self.consecutive_failures += 1
        pause = 0.0
        if overloaded:
            self.allowed = max(1.0, self.allowed / 2)
            pause = self._pauses.backoff(1, retry_after, self._rng)
        if self.breaker_open:
            probes_failed = self.consecutive_failures - self.BREAKER_THRESHOLD + 1
            pause = max(pause, self._pauses.backoff(probes_failed, rng=self._rng))
        if pause:
            self.paused_until = max(self.paused_until, now + pause)
