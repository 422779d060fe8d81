"""A token bucket: ``burst`` calls at once, refilled at ``rate`` a second.
Pure (the caller passes the time), so it is tested without sleeping."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class TokenBucket:
    rate: float  # tokens added per second
    burst: float  # capacity
    tokens: float = -1.0  # -1: full on first use
    updated: float = 0.0

    def take(self, now: float) -> float | None:
        """Spend one token; None if there was one, else the seconds until
        there will be (the ``Retry-After``)."""
        if self.tokens < 0:
            self.tokens, self.updated = self.burst, now
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return None
        return (1.0 - self.tokens) / self.rate
