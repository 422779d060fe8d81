"""The queue and the sweeps that end batches, in memory (port.QueueStore,
port.BatchSweeps)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from batchgate.domain import batch as batch_model
from batchgate.domain import failures, fairness, retry
from batchgate.domain import states as state_rules
from batchgate.domain.states import BatchStatus, RequestState
from batchgate.testing.memory.tables import MemoryTables, RequestRow

# A lost lease requeues its request or errors it: what may make both moves.
_LOSABLE = state_rules.request_sources(RequestState.QUEUED, RequestState.ERRORED)


class MemoryQueue(MemoryTables):
    """port.QueueStore: claims, leases, fenced outcome writes."""

    def claim(
        self,
        model: str,
        n: int,
        worker_id: str,
        now: float,
        lease_seconds: float,
        route: str | None = None,
    ) -> list[batch_model.ClaimedRequest]:
        if n <= 0:
            return []
        with self._lock:
            ready: dict[str, list[RequestRow]] = {}
            for row in self._batches.values():
                if row.batch.status is not BatchStatus.IN_PROGRESS:
                    continue
                queued = [
                    request
                    for request in (self._requests[i] for i in row.request_ids)
                    if request.model == model
                    and state_rules.can_move_request(request.state, RequestState.RUNNING)
                    and request.not_before <= now
                    and request.route == route
                ]
                if queued:
                    ready[row.batch.id] = queued
            candidates = [
                fairness.Candidate(
                    batch_id,
                    self._batches[batch_id].batch.owner,
                    self._batches[batch_id].last_claimed_at,
                )
                for batch_id in ready
            ]
            claimed: list[batch_model.ClaimedRequest] = []
            for batch_id, share in fairness.fair_shares(candidates, n).items():
                picked = sorted(ready[batch_id], key=lambda request: request.id)[:share]
                for request in picked:
                    request.state = RequestState.RUNNING
                    request.lease_owner = worker_id
                    request.lease_expires_at = now + lease_seconds
                    request.attempts += 1
                    request.started_at = now
                    request.generating_at = None
                    claimed.append(
                        batch_model.ClaimedRequest(
                            id=request.id,
                            batch_id=batch_id,
                            custom_id=request.custom_id,
                            model=request.model,
                            params=request.params,
                            attempt=request.attempts,
                        )
                    )
                if picked:
                    self._batches[batch_id].last_claimed_at = now
        claimed.sort(key=lambda request: request.id)
        return claimed

    def extend_leases(
        self, worker_id: str, request_ids: Iterable[int], now: float, lease_seconds: float
    ) -> set[int]:
        held: set[int] = set()
        with self._lock:
            for request_id in set(request_ids):
                request = self._requests.get(request_id)
                if request is not None and self._holds(request, worker_id):
                    request.lease_expires_at = now + lease_seconds
                    held.add(request_id)
        return held

    def mark_generating(self, worker_id: str, request_ids: Iterable[int], now: float) -> None:
        with self._lock:
            for request_id in set(request_ids):
                request = self._requests.get(request_id)
                if request is not None and self._holds(request, worker_id):
                    request.generating_at = now

    def held_request_ids(self, worker_id: str) -> set[int]:
        with self._lock:
            return {r.id for r in self._requests.values() if self._holds(r, worker_id)}

    def record_outcomes(self, outcomes: Sequence[batch_model.Outcome], now: float) -> list[bool]:
        applied: dict[int, bool] = {}
        with self._lock:
            for outcome in outcomes:
                request = self._requests.get(outcome.request_id)
                fenced = (
                    request is not None
                    and self._holds(request, outcome.worker_id)
                    and request.attempts == outcome.attempt
                    and state_rules.can_move_request(request.state, outcome.state)
                )
                applied[outcome.request_id] = fenced
                if request is None or not fenced:
                    continue
                request.lease_owner = None
                request.lease_expires_at = None
                request.error = outcome.error
                if outcome.state is RequestState.QUEUED:
                    request.state = RequestState.QUEUED
                    request.not_before = outcome.not_before
                    request.attempts -= 1 if outcome.refund_attempt else 0
                else:
                    request.state = outcome.state
                    request.result = outcome.result
                    request.input_tokens = outcome.input_tokens
                    request.output_tokens = outcome.output_tokens
                    request.cached_tokens = outcome.cached_tokens
                    request.reasoning_tokens = outcome.reasoning_tokens
                    request.cost = outcome.cost
                    request.finished_at = now
                    if outcome.route is not None:
                        request.route = outcome.route
        return [applied[outcome.request_id] for outcome in outcomes]

    def requeue_lost_leases(self, now: float, policy: retry.RetryPolicy) -> int:
        moved = 0
        with self._lock:
            for request in self._requests.values():
                lost = (
                    request.state in _LOSABLE
                    and request.lease_expires_at is not None
                    and request.lease_expires_at < now
                )
                if not lost:
                    continue
                moved += 1
                request.lease_owner = None
                request.lease_expires_at = None
                decision = policy.decide(retry.LOST_LEASE, request.attempts)
                if isinstance(decision, retry.GiveUp):
                    request.state = RequestState.ERRORED
                    request.finished_at = now
                    request.error = failures.lost_lease(request.attempts)
                else:
                    request.state = RequestState.QUEUED
                    request.not_before = now + decision.delay
                    request.attempts -= int(decision.refund_attempt)
        return moved


class MemorySweeps(MemoryTables):
    """port.BatchSweeps: expiry and finalizing."""

    def expire_batches(self, now: float) -> list[str]:
        expired: list[str] = []
        with self._lock:
            for row in self._batches.values():
                if row.batch.expires_at <= now and self._move(row, BatchStatus.EXPIRED, now):
                    self._end_open_requests(row, RequestState.EXPIRED, now)
                    self._add_result_files(row, now)
                    self._add_batch_event(row.batch.id, row.batch.owner, BatchStatus.EXPIRED, now)
                    expired.append(row.batch.id)
        return expired

    def finalize_batches(self, now: float, batch_ids: Iterable[str] | None = None) -> list[str]:
        ended: list[str] = []
        with self._lock:
            wanted = self._batches.keys() if batch_ids is None else set(batch_ids)
            for batch_id in list(wanted):
                row = self._batches.get(batch_id)
                if row is None or row.batch.status not in state_rules.SETTLED_BATCH_STATUS:
                    continue
                if any(self._requests[i].is_open for i in row.request_ids):
                    continue
                target = state_rules.SETTLED_BATCH_STATUS[row.batch.status]
                self._move(row, target, now)
                if target is BatchStatus.COMPLETED:
                    row.batch = dataclasses.replace(row.batch, finalizing_at=now)
                self._add_result_files(row, now)
                self._add_batch_event(batch_id, row.batch.owner, target, now)
                ended.append(batch_id)
        return ended
