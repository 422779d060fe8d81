"""The retry decision: whether, and when, a failed attempt is tried again.

One pure function, :meth:`RetryPolicy.decide`, for every way an attempt can
fail: an upstream error, a call made while the model's breaker was open, a
worker that lost its lease, a request handed back unstarted by a draining
worker, a webhook delivery the receiver did not take. :meth:`RetryPolicy.backoff`
is the one backoff: the retries above and the model throttle's pauses
(worker/pacing.py) all wait by it. It only decides; the worker and the store
act (procrastinate's ``retry.py`` is the model). Backoff is exponential with
full jitter (AWS architecture blog, "Exponential Backoff And Jitter"), never
sooner than the upstream's own ``Retry-After``, and never past the policy's
deadline, if it has one.
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
    # Whether the attempt was made: a request handed back before it started
    # keeps its attempt.
    attempted: bool = True


# The attempt's worker stopped heartbeating (crashed, stalled, partitioned).
LOST_LEASE = Failure(retryable=True, back_off=False)
# A draining worker hands back a claimed request it never started.
NOT_STARTED = Failure(retryable=True, back_off=False, attempted=False)


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
    """``max_attempts``: tries in all (None: no cap, the deadline decides);
    ``deadline_seconds``: how long after the work began it may still be
    tried (None: no deadline); backoff from ``base_seconds``, doubling per
    attempt, at most ``max_seconds``."""

    max_attempts: int | None = 5
    base_seconds: float = 1.0
    max_seconds: float = 60.0
    deadline_seconds: float | None = None

    def decide(
        self,
        failure: Failure,
        attempt: int,
        breaker: Breaker = CLOSED,
        rng: random.Random | None = None,
        *,
        elapsed: float = 0.0,
    ) -> Decision:
        """What follows failed attempt number ``attempt`` (1-based), ``elapsed``
        seconds after the work began."""
        if not failure.retryable:
            return GIVE_UP
        if not failure.attempted:
            return RetryAt(0.0, refund_attempt=True)
        left = None if self.deadline_seconds is None else self.deadline_seconds - elapsed
        if left is not None and left <= 0:
            return GIVE_UP
        if breaker.was_open:
            # The request keeps its attempts until the upstream is back.
            return RetryAt(_within(breaker.pause_left, left), refund_attempt=True)
        if self.max_attempts is not None and attempt >= self.max_attempts:
            return GIVE_UP
        if not failure.back_off:
            return RetryAt(0.0)
        return RetryAt(_within(self.backoff(attempt, failure.retry_after, rng), left))

    def backoff(
        self, attempt: int, retry_after: float | None = None, rng: random.Random | None = None
    ) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        ceiling = min(self.max_seconds, self.base_seconds * (2 ** max(attempt - 1, 0)))
        delay = (rng or random).uniform(0.0, ceiling)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return delay


def _within(delay: float, left: float | None) -> float:
    """``delay``, but no later than the deadline ``left`` seconds away: the
    last try is made before it, even when a Retry-After asked for longer."""
    return delay if left is None else min(delay, left)
