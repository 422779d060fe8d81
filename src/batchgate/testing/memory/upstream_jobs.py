"""Upstream jobs in memory (port.UpstreamJobStore): the same rules as
store/sql_upstream_jobs.py, held to them by tests/contract/test_upstream_jobs.py."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from batchgate.domain import upstream_jobs as uj
from batchgate.domain.states import BatchStatus, RequestState
from batchgate.testing.memory.tables import MemoryTables, RequestRow


class MemoryUpstreamJobs(MemoryTables):
    """port.UpstreamJobStore."""

    def _pending_rows(self, model: str, now: float) -> list[tuple[float, RequestRow]]:
        """(batch window end, row) of the model's rows a job may take now."""
        found: list[tuple[float, RequestRow]] = []
        for batch_row in self._batches.values():
            if batch_row.batch.status is not BatchStatus.IN_PROGRESS:
                continue
            for request_id in batch_row.request_ids:
                request = self._requests[request_id]
                if (
                    request.model == model
                    and request.state is RequestState.QUEUED
                    and request.route is None
                    and request.not_before <= now
                ):
                    found.append((batch_row.batch.expires_at, request))
        return found

    def pending_upstream_work(self, model: str, now: float) -> uj.PendingWork:
        with self._lock:
            rows = self._pending_rows(model, now)
            created = [self._batches[r.batch_id].batch.created_at for _, r in rows]
        return uj.PendingWork(
            count=len(rows),
            bytes=sum(len(r.params) for _, r in rows),
            oldest_queued_at=min(created, default=None),
            earliest_deadline=min((deadline for deadline, _ in rows), default=None),
        )

    def assemble_job(
        self, job: uj.UpstreamJob, max_requests: int, now: float
    ) -> list[uj.HeldRequest]:
        if max_requests <= 0:
            return []
        with self._lock:
            rows = sorted(self._pending_rows(job.model, now), key=lambda p: (p[0], p[1].id))
            picked = rows[:max_requests]
            if not picked:
                return []
            held: list[uj.HeldRequest] = []
            for deadline, request in picked:
                request.state = RequestState.RUNNING
                request.lease_owner = job.id
                request.lease_expires_at = now + uj.JOB_ROW_LEASE_SECONDS
                request.attempts += 1
                request.started_at = now
                request.generating_at = None
                request.upstream_job_id = job.id
                held.append(self._held(request, deadline))
            self._jobs[job.id] = dataclasses.replace(
                job,
                state=uj.JobState.ASSEMBLING,
                request_count=len(held),
                deadline=min(r.deadline for r in held),
                bytes=job.bytes or sum(len(r.params) for r in held),
            )
        return sorted(held, key=lambda request: request.id)

    def _held(self, request: RequestRow, deadline: float | None = None) -> uj.HeldRequest:
        if deadline is None:
            deadline = self._batches[request.batch_id].batch.expires_at
        return uj.HeldRequest(
            request.id, request.batch_id, request.params, request.attempts, deadline
        )

    def job_requests(
        self,
        job_id: str,
        request_ids: Iterable[int] | None = None,
        *,
        with_params: bool = True,
    ) -> list[uj.HeldRequest]:
        with self._lock:
            if request_ids is None:
                rows = [r for r in self._requests.values() if self._holds(r, job_id)]
            else:
                rows = self._held_among(job_id, request_ids)
            held = [self._held(r) for r in sorted(rows, key=lambda r: r.id)]
        return held if with_params else [dataclasses.replace(h, params="") for h in held]

    def job_hold(self, job_id: str) -> uj.Hold:
        with self._lock:
            held = [r for r in self._requests.values() if self._holds(r, job_id)]
            deadlines = [self._batches[r.batch_id].batch.expires_at for r in held]
        return uj.Hold(len(held), min(deadlines, default=None))

    def dropped_params(self, job_id: str, request_ids: Iterable[int]) -> dict[int, str]:
        with self._lock:
            rows = (self._requests.get(i) for i in set(request_ids))
            return {
                r.id: r.params
                for r in rows
                if r is not None
                and r.upstream_job_id == job_id
                and (r.state in uj.UNSERVED_STATES or r.route == uj.Path.REALTIME)
            }

    def _held_among(self, job_id: str, request_ids: Iterable[int]) -> list[RequestRow]:
        rows = (self._requests.get(i) for i in set(request_ids))
        return [r for r in rows if r is not None and self._holds(r, job_id)]

    def _move_held(
        self, job_id: str, request_ids: Iterable[int], state: RequestState
    ) -> list[RequestRow]:
        """The job's rows among ``request_ids``, moved to ``state`` and out of
        its lease (the caller holds the lock and sets the rest), as
        sql_upstream_jobs._move_held."""
        rows = self._held_among(job_id, request_ids)
        for request in rows:
            request.state = state
            request.lease_owner = None
            request.lease_expires_at = None
        return rows

    def release_job_requests(
        self,
        job_id: str,
        request_ids: Iterable[int],
        now: float,
        *,
        route: uj.Path | None = None,
    ) -> int:
        with self._lock:
            rows = self._move_held(job_id, request_ids, RequestState.QUEUED)
            for request in rows:
                request.generating_at = None
                request.not_before = now
                request.attempts -= 1
                request.route = None if route is None else route.value
        return len(rows)

    def expire_job_requests(self, job_id: str, request_ids: Iterable[int], now: float) -> int:
        with self._lock:
            rows = self._move_held(job_id, request_ids, RequestState.EXPIRED)
            for request in rows:
                request.finished_at = now
        return len(rows)

    def claim_due_jobs(
        self, models: Sequence[str], worker_id: str, now: float, lease_seconds: float, limit: int
    ) -> list[uj.UpstreamJob]:
        if limit <= 0:
            return []
        wanted = set(models)
        with self._lock:
            due = sorted(
                (
                    job
                    for job in self._jobs.values()
                    if job.model in wanted
                    and not job.done
                    and job.next_poll_at <= now
                    and (
                        job.lease_owner is None
                        or job.lease_owner == worker_id
                        or (job.lease_expires_at is not None and job.lease_expires_at <= now)
                    )
                ),
                key=lambda job: (job.created_at, job.id),
            )[:limit]
            leased = [
                dataclasses.replace(
                    job, lease_owner=worker_id, lease_expires_at=now + lease_seconds
                )
                for job in due
            ]
            self._jobs.update((job.id, job) for job in leased)
        return leased

    def update_job(
        self,
        job_id: str,
        worker_id: str,
        update: uj.JobUpdate,
        now: float,
        lease_seconds: float,
    ) -> uj.UpstreamJob | None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.lease_owner != worker_id:
                return None
            if update.state is not None and not uj.can_move_job(job.state, update.state):
                return None
            job = dataclasses.replace(job, **update.changes(), lease_expires_at=now + lease_seconds)
            self._jobs[job_id] = job
        return job

    def release_job_lease(self, job_id: str, worker_id: str) -> None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is not None and job.lease_owner == worker_id:
                self._jobs[job_id] = dataclasses.replace(
                    job, lease_owner=None, lease_expires_at=None
                )

    def get_job(self, job_id: str) -> uj.UpstreamJob | None:
        with self._lock:
            return self._jobs.get(job_id)

    def list_jobs(
        self,
        *,
        model: str | None = None,
        states: Iterable[uj.JobState] | None = None,
        ended_since: float | None = None,
        limit: int = 100,
    ) -> list[uj.UpstreamJob]:
        wanted = None if states is None else set(states)
        with self._lock:
            jobs = [
                job
                for job in self._jobs.values()
                if (model is None or job.model == model)
                and (wanted is None or job.state in wanted)
                and (
                    ended_since is None
                    or (job.ended_at is not None and job.ended_at >= ended_since)
                )
            ]
        jobs.sort(key=lambda job: (job.created_at, job.id), reverse=True)
        return jobs[:limit]

    def jobs_for_batch(self, batch_id: str) -> list[uj.UpstreamJob]:
        with self._lock:
            batch_row = self._batches.get(batch_id)
            request_ids = [] if batch_row is None else batch_row.request_ids
            used = {self._requests[i].upstream_job_id for i in request_ids}
            jobs = [self._jobs[job_id] for job_id in used if job_id in self._jobs]
        return sorted(jobs, key=lambda job: (job.created_at, job.id))

    def served_paths(self, batch_id: str) -> dict[uj.Path, int]:
        served: dict[uj.Path, int] = {}
        with self._lock:
            batch_row = self._batches.get(batch_id)
            for request_id in [] if batch_row is None else batch_row.request_ids:
                request = self._requests[request_id]
                if request.route is not None and request.state in uj.SERVED_STATES:
                    path = uj.Path(request.route)
                    served[path] = served.get(path, 0) + 1
        return served

    def fallback_due(self, model: str, deadline_before: float) -> dict[str, list[int]]:
        due: dict[str, list[int]] = {}
        with self._lock:
            for request in sorted(self._requests.values(), key=lambda r: r.id):
                job = self._jobs.get(request.upstream_job_id or "")
                if (
                    job is None
                    or job.model != model
                    or job.state not in uj.OPEN_JOB_STATES
                    or not self._holds(request, job.id)
                ):
                    continue
                if self._batches[request.batch_id].batch.expires_at < deadline_before:
                    due.setdefault(job.id, []).append(request.id)
        return dict(sorted(due.items()))

    def recorded_upstream_batch_ids(self, kind: str, since: float) -> set[str]:
        with self._lock:
            return {
                job.upstream_batch_id
                for job in self._jobs.values()
                if job.kind == kind and job.created_at >= since and job.upstream_batch_id
            }

    def start_create(
        self, job_id: str, worker_id: str, now: float, lease_seconds: float
    ) -> uj.UpstreamJob | None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.lease_owner != worker_id:
                return None
            if any(
                other.kind == job.kind and other.id != job.id and uj.create_unresolved(other)
                for other in self._jobs.values()
            ):
                return None
            job = dataclasses.replace(
                job, create_started_at=now, lease_expires_at=now + lease_seconds
            )
            self._jobs[job_id] = job
        return job
