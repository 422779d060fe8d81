"""What every step of an upstream job shares: the store, the model's
backend and settings, what this process remembers about its jobs, and the
fenced writes all steps make (a change to the job, rows released, outcomes
recorded, the job ended)."""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import time
from collections.abc import Sequence
from typing import Protocol

from batchgate import config
from batchgate.backends import provider_batch as pb
from batchgate.domain import batch as batch_model
from batchgate.domain import retry
from batchgate.domain import upstream_jobs as uj
from batchgate.metrics import worker as worker_metrics
from batchgate.store import port
from batchgate.worker import trace

log = logging.getLogger("batchgate.upstream")

ERROR_CHARS = 500  # of an upstream's message kept on the job (last_error)


class DriverStore(port.QueueStore, port.BatchSweeps, port.UpstreamJobStore, Protocol):
    """The roles a driver uses: its jobs, the outcome writes fenced on them,
    and finalizing the batches those writes end."""


class Context:
    """One provider-batch model on this worker: its settings, and what this
    process remembers of its jobs (nothing here needs to survive a crash:
    the store and the provider hold the truth, every step looks again)."""

    def __init__(
        self,
        store: DriverStore,
        backend: pb.ProviderBatchBackend,
        model: config.ModelConfig,
        *,
        options: config.WorkerSettings,
        policy: retry.RetryPolicy,
        metrics: worker_metrics.Recorder,
        worker_id: str,
    ) -> None:
        self.store = store
        self.backend = backend
        self.client = backend.client
        self.limits = backend.limits
        self.model = model
        self.options = options
        self.policy = policy
        self.metrics = metrics
        self.worker_id = worker_id
        # The job size after refusals as too large (kept for this process).
        self.size = backend.limits.max_requests
        self.refusals = 0  # in a row; the flush backs off by them
        self.flush_not_before = 0.0
        self.turnaround = (0.0, float("-inf"))  # (seconds, when read)
        self.leased: set[str] = set()  # jobs this worker claimed (released on drain)
        # Jobs assembled here whose file was never sent: nothing to look for.
        self.fresh: set[str] = set()
        self.failures: collections.Counter[str] = collections.Counter()
        # Result lines of a job already written by this process (a download
        # repeated after an error skips them, and counts no cost twice).
        self.seen: dict[str, set[int]] = {}
        # One create in flight per model in this process (the store's
        # start_create keeps Anthropic's to one unresolved per kind across
        # processes and crashes).
        self.create_lock = asyncio.Lock()
        # Deletes of done jobs' files at the provider, in flight.
        self.deletes: set[asyncio.Task[None]] = set()

    def forget(self, job_id: str) -> None:
        """The job is done here (ended and downloaded, or another worker's)."""
        self.leased.discard(job_id)
        self.fresh.discard(job_id)
        self.seen.pop(job_id, None)
        self.failures.pop(job_id, None)

    async def update(self, job: uj.UpstreamJob, update: uj.JobUpdate) -> uj.UpstreamJob | None:
        """One fenced change to the job; None (the step stops) when another
        worker has it now."""
        updated = await asyncio.to_thread(
            self.store.update_job,
            job.id,
            self.worker_id,
            update,
            time.time(),
            self.options.lease_seconds,
        )
        if updated is None:
            log.warning("upstream job %s is no longer this worker's; step stopped", job.id)
            self.leased.discard(job.id)
        return updated

    async def end(
        self, job: uj.UpstreamJob, status: uj.EndStatus, why: str | None
    ) -> uj.UpstreamJob | None:
        """End a job that has nothing (more) to download."""
        now = time.time()
        already = job.state is uj.JobState.ENDED
        ended = await self.update(
            job,
            uj.JobUpdate(
                state=None if already else uj.JobState.ENDED,
                end_status=None if already else status,
                ended_at=None if already else now,
                downloaded_at=now,
                last_error=why,
            ),
        )
        if ended is not None and not already:
            self.metrics.job_ended(self.model.name, status.value, None)
        return ended

    async def release(
        self, job_id: str, request_ids: Sequence[int], now: float, *, route: uj.Path | None = None
    ) -> int:
        """Rows the job holds back to the queue (their attempt refunded), or
        to the real-time lane (``route``)."""
        if not request_ids:
            return 0
        moved = await asyncio.to_thread(
            self.store.release_job_requests, job_id, request_ids, now, route=route
        )
        if moved and route is uj.Path.REALTIME:
            log.info(
                "%d requests of upstream job %s fall back to the real-time upstream",
                moved,
                job_id,
                extra={"event": "upstream_fallback", "job_id": job_id, "requests": moved},
            )
        return moved

    async def record(self, outcomes: list[batch_model.Outcome], batch_ids: set[str]) -> list[bool]:
        """Write outcomes (one transaction), count them, and finalize the
        batches they may have ended so their results read at once."""
        if not outcomes:
            return []
        now = time.time()
        applied = await asyncio.to_thread(self.store.record_outcomes, outcomes, now)
        for outcome, ok in zip(outcomes, applied, strict=True):
            self.metrics.record(self.model.name, outcome, ok)
        try:
            await self.finalize(batch_ids, now)
        except Exception:  # the sweep finalizes them later
            log.exception("finalize after upstream results failed")
        return applied

    async def finalize(self, batch_ids: set[str], now: float) -> None:
        """End the batches rows just left may have ended (their results read at once)."""
        ended = await asyncio.to_thread(self.store.finalize_batches, now, batch_ids)
        trace.batches_ended(ended, "ended")

    async def held_rows(self, job_id: str) -> list[uj.HeldRequest]:
        """The rows a job holds, without their params (ids, batches,
        deadlines: what settling them needs)."""
        return await asyncio.to_thread(
            functools.partial(self.store.job_requests, job_id, with_params=False)
        )

    async def held(
        self, job: uj.UpstreamJob, *, with_params: bool = False
    ) -> tuple[list[uj.HeldRequest], int]:
        """The rows the job holds, after those whose window is running out
        left it for the real-time lane (how many did: the second value)."""
        held = await asyncio.to_thread(
            functools.partial(self.store.job_requests, job.id, with_params=with_params)
        )
        if self.backend.realtime is None:
            return held, 0
        now = time.time()
        due = {row.id for row in held if uj.needs_fallback(row.deadline, now, self.limits)}
        if not due:
            return held, 0
        moved = await self.release(job.id, sorted(due), now, route=uj.Path.REALTIME)
        return [row for row in held if row.id not in due], moved

    async def hold(self, job: uj.UpstreamJob) -> tuple[uj.Hold, int]:
        """What :meth:`held` tells a poll, counted by the store: the rows
        are read only when some must leave for the real-time lane. A job is
        polled many times and may hold 100,000 rows; reading them all on
        every poll cost more than writing its results back."""
        hold = await asyncio.to_thread(self.store.job_hold, job.id)
        earliest = hold.earliest_deadline
        if (
            self.backend.realtime is None
            or earliest is None
            or not uj.needs_fallback(earliest, time.time(), self.limits)
        ):
            return hold, 0
        held, moved = await self.held(job)
        return uj.Hold(len(held), min((row.deadline for row in held), default=None)), moved


def why(exc: Exception) -> str:
    """An error as the job records it (``last_error``)."""
    return (str(exc) or type(exc).__name__)[:ERROR_CHARS]
