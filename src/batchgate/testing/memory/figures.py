"""Operator figures and worker heartbeats, in memory (port.StatsReader,
port.WorkerRegistry)."""

from __future__ import annotations

from batchgate.domain import estimate, stats, workers
from batchgate.domain import upstream_jobs as uj
from batchgate.domain.states import BatchStatus, RequestState
from batchgate.testing.memory.tables import MEMORY_REVISION, MemoryTables, RequestRow


class MemoryStats(MemoryTables):
    """port.StatsReader over the dictionaries."""

    def model_stats(
        self, now: float, *, window_seconds: float = 300.0, owner: str | None = None
    ) -> list[stats.ModelStats]:
        parts: dict[str, stats.ModelTally] = {}
        oldest: dict[str, float] = {}
        with self._lock:
            for request in self._requests.values():
                batch = self._batches[request.batch_id].batch
                if owner is not None and batch.owner != owner:
                    continue
                finished = request.finished_at
                queued = request.state is RequestState.QUEUED
                if not request.state.is_terminal:
                    parts.setdefault(request.model, stats.ModelTally()).add(
                        request.state, 1, waiting=int(queued and request.not_before > now)
                    )
                elif finished is not None and finished >= now - window_seconds:
                    parts.setdefault(request.model, stats.ModelTally()).add_recent(
                        request.state,
                        1,
                        input_tokens=request.input_tokens,
                        output_tokens=request.output_tokens,
                        cost=request.cost,
                    )
                if queued:
                    oldest[request.model] = min(
                        oldest.get(request.model, batch.created_at), batch.created_at
                    )
        return [
            tally.stats(model, oldest_queued_at=oldest.get(model), window_seconds=window_seconds)
            for model, tally in sorted(parts.items())
        ]

    def batch_status_counts(self, owner: str | None = None) -> dict[BatchStatus, int]:
        counts: dict[BatchStatus, int] = {}
        with self._lock:
            for row in self._batches.values():
                if row.deleted_at is None and (owner is None or row.batch.owner == owner):
                    counts[row.batch.status] = counts.get(row.batch.status, 0) + 1
        return counts

    def path_costs(self, since: float) -> list[stats.PathCost]:
        sums: dict[tuple[str, str], tuple[int, float]] = {}
        with self._lock:
            for request in self._requests.values():
                finished = request.finished_at
                if request.route is None or request.state not in uj.SERVED_STATES:
                    continue
                if finished is None or finished < since:
                    continue
                count, billed = sums.get((request.model, request.route), (0, 0.0))
                sums[(request.model, request.route)] = (count + 1, billed + request.cost)
        return [
            stats.PathCost(model, uj.Path(route), count, billed)
            for (model, route), (count, billed) in sorted(sums.items())
        ]

    def recent_work(self, model: str, since: float) -> estimate.RecentWork:
        with self._lock:
            done = [
                request
                for request in self._requests.values()
                if request.model == model
                and request.state is RequestState.SUCCEEDED
                and request.finished_at is not None
                and request.finished_at >= since
            ]
            if not done:
                return estimate.RecentWork()
            spans: dict[str, tuple[float, float]] = {}
            for request in done:
                began = _began(request)
                first, last = spans.get(request.batch_id, (began, began))
                spans[request.batch_id] = (
                    min(first, began),
                    max(last, request.finished_at or began),
                )
            return estimate.RecentWork(
                requests=len(done),
                tokens=sum(request.input_tokens + request.output_tokens for request in done),
                busy_seconds=sum(max(last - first, 0.0) for first, last in spans.values()),
                output_tokens=sum(request.output_tokens for request in done),
                request_seconds=sum(
                    max((request.finished_at or 0.0) - _began(request), 0.0) for request in done
                ),
            )

    def schema_revision(self) -> tuple[str | None, str]:
        """There is no schema to migrate: always current."""
        return MEMORY_REVISION, MEMORY_REVISION


class MemoryWorkers(MemoryTables):
    """port.WorkerRegistry in a dictionary."""

    def record_worker(self, heartbeat: workers.WorkerHeartbeat) -> None:
        with self._lock:
            self._workers[heartbeat.id] = heartbeat

    def list_workers(self, *, seen_since: float | None = None) -> list[workers.WorkerHeartbeat]:
        with self._lock:
            seen = [
                worker
                for worker in self._workers.values()
                if seen_since is None or worker.last_seen_at >= seen_since
            ]
        return sorted(seen, key=lambda worker: (-worker.last_seen_at, worker.id))

    def retire_workers(self, stopped_before: float) -> int:
        with self._lock:
            done = [
                worker
                for worker in self._workers.values()
                if worker.stopped_at is not None
                and worker.last_seen_at < stopped_before
                and worker.id != workers.RETIRED_ID
            ]
            if done:
                folded = workers.retire(done, self._workers.get(workers.RETIRED_ID))
                for worker in done:
                    del self._workers[worker.id]
                self._workers[folded.id] = folded
        return len(done)


def _began(request: RequestRow) -> float:
    """When its backend call started (its claim, before 0012's mark)."""
    return request.generating_at or request.started_at or request.finished_at or 0.0
