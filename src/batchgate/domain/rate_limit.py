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

    def wait(self, now: float) -> float | None:
        """Like :meth:`take`, without spending: None if a token is there."""
        tokens = self.burst if self.tokens < 0 else self.tokens
        tokens = min(self.burst, tokens + max(0.0, now - self.updated) * self.rate)
        return None if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def is_full(self, now: float) -> bool:
        """Refilled to the brim: the same as a new bucket, so it may be dropped."""
        return self.tokens < 0 or self.tokens + (now - self.updated) * self.rate >= self.burst

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
