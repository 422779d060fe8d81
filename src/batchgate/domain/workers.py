"""Worker processes as the store remembers them: who, where, when last seen,
and the cumulative counters each one reported."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class WorkerHeartbeat:
    id: str
    host: str
    pid: int
    models: tuple[str, ...]
    started_at: float
    last_seen_at: float
    stopped_at: float | None = None
    # Metric samples this process counted since it started (metrics/worker.py).
    stats: dict[str, Any] | None = None

    def is_alive(self, now: float, within_seconds: float) -> bool:
        """Running, and heard from recently enough that its leases still hold."""
        return self.stopped_at is None and now - self.last_seen_at <= within_seconds
