"""The retry policy: decides when (and whether) to try a failed request again.

It only decides; the worker acts. Exponential backoff with full jitter
(AWS architecture blog, "Exponential Backoff And Jitter"), never sooner than
the upstream's own ``Retry-After``.
"""

from __future__ import annotations

import dataclasses
import random


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base_seconds: float = 1.0
    max_seconds: float = 60.0

    def backoff(
        self, attempt: int, retry_after: float | None = None, rng: random.Random | None = None
    ) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        ceiling = min(self.max_seconds, self.base_seconds * (2 ** max(attempt - 1, 0)))
        delay = (rng or random).uniform(0.0, ceiling)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return delay

    def should_retry(self, attempt: int, retryable: bool) -> bool:
        """Whether failed attempt number ``attempt`` earns another try."""
        return retryable and attempt < self.max_attempts
