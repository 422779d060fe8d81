"""The retry decision: whether, and when, a failed attempt is tried again.

One pure function, :meth:`RetryPolicy.decide`, for every way an attempt can
fail: an upstream error, a call made while the model's breaker was open, a
worker that lost its lease. It only decides; the worker and the store act
(procrastinate's ``retry.py`` is the model). Backoff is exponential with full
jitter (AWS architecture blog, "Exponential Backoff And Jitter"), never
sooner than the upstream's own ``Retry-After``.
"""

from __future__ import annotations

import dataclasses
import random


@dataclasses.dataclass(frozen=True)
class Failure:
    """What went wrong with one attempt, as far as retrying is concerned."""

    retryable: bool
    retry_after: float | None = None  # the upstream's own hint, in seconds
    # Whether waiting helps: an overloaded upstream needs time; a worker that
    # vanished mid-call says nothing about the upstream, so its request goes
    # back at once.
    back_off: bool = True


# The attempt's worker stopped heartbeating (crashed, stalled, partitioned).
LOST_LEASE = Failure(retryable=True, back_off=False)


@dataclasses.dataclass(frozen=True)
class Breaker:
    """The model's down-upstream breaker as the failed call saw it."""

    # It was open before the call: the call was a probe of an upstream that
    # looked down, not a real try of the request.
    was_open: bool = False
    pause_left: float = 0.0  # seconds until the breaker lets the next probe out


CLOSED = Breaker()


@dataclasses.dataclass(frozen=True)
class RetryAt:
    """Try again, not sooner than ``delay`` seconds from now. A refunded
    attempt does not count towards the request's ``max_attempts``."""

    delay: float
    refund_attempt: bool = False


@dataclasses.dataclass(frozen=True)
class GiveUp:
    """The request ends errored with this attempt's error."""


GIVE_UP = GiveUp()

Decision = RetryAt | GiveUp


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base_seconds: float = 1.0
    max_seconds: float = 60.0

    def decide(
        self,
        failure: Failure,
        attempt: int,
        breaker: Breaker = CLOSED,
        rng: random.Random | None = None,
    ) -> Decision:
        """What follows failed attempt number ``attempt`` (1-based)."""
        if not failure.retryable:
            return GIVE_UP
        if breaker.was_open:
            # The request keeps its attempts until the upstream is back.
            return RetryAt(breaker.pause_left, refund_attempt=True)
        if attempt >= self.max_attempts:
            return GIVE_UP
        if not failure.back_off:
            return RetryAt(0.0)
        return RetryAt(self.backoff(attempt, failure.retry_after, rng))

    def backoff(
        self, attempt: int, retry_after: float | None = None, rng: random.Random | None = None
    ) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        ceiling = min(self.max_seconds, self.base_seconds * (2 ** max(attempt - 1, 0)))
        delay = (rng or random).uniform(0.0, ceiling)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return delay
