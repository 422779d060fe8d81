"""Worker processes as the store remembers them: who, where, when last seen,
and the cumulative counters each one reported."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
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


# The row that stands for every worker that stopped more than a lease ago:
# their counters summed, so totals outlive restarts without a row per process.
RETIRED_ID = "retired"


def merge_stats(reports: Iterable[dict[str, Any] | None]) -> dict[str, Any]:
    """Several workers' reported samples as one report: same family, same
    sample name, same labels, values added (counters and histograms both)."""
    merged: dict[str, Any] = {}
    sums: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for report in reports:
        for name, family in (report or {}).items():
            merged.setdefault(name, {"type": family["type"], "help": family["help"]})
            totals = sums.setdefault(name, {})
            for sample_name, labels, value in family["samples"]:
                key = (sample_name, tuple(sorted(labels.items())))
                totals[key] = totals.get(key, 0.0) + float(value)
    for name, family in merged.items():
        family["samples"] = [
            [sample_name, dict(labels), value]
            for (sample_name, labels), value in sums[name].items()
        ]
    return merged


def retire(stopped: list[WorkerHeartbeat], retired: WorkerHeartbeat | None) -> WorkerHeartbeat:
    """The retired row once ``stopped`` workers are folded into it."""
    everyone = [*stopped, *([retired] if retired is not None else [])]
    return WorkerHeartbeat(
        id=RETIRED_ID,
        host="",
        pid=0,
        models=(),
        started_at=min(worker.started_at for worker in everyone),
        last_seen_at=max(worker.last_seen_at for worker in everyone),
        stopped_at=max(worker.stopped_at or worker.last_seen_at for worker in everyone),
        stats=merge_stats(worker.stats for worker in everyone),
    )
