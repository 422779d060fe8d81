"""The driver's loop: each tick it flushes (packs queued rows into new
jobs), falls back (rows of unsent jobs whose window runs out go to the
real-time lane), and steps every due job it can lease, each in its own
task, by the job's state (sending.py, polling.py, results.py)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable

from batchgate import config
from batchgate.backends import provider_batch as pb
from batchgate.domain import ids, retry
from batchgate.domain import upstream_jobs as uj
from batchgate.metrics import worker as worker_metrics
from batchgate.worker.upstream_jobs import cleanup, lease, polling, results, sending, step_errors
from batchgate.worker.upstream_jobs.context import Context, DriverStore

log = logging.getLogger("batchgate.upstream")

MAX_STEPS = 8  # jobs of one model stepped at once by this worker
MAX_JOBS_PER_FLUSH = 64  # full jobs assembled in one tick
TURNAROUND_REFRESH_SECONDS = 60.0

Step = Callable[[Context, uj.UpstreamJob], Awaitable[uj.UpstreamJob | None]]
# What to do with a job in each state; a step returns the job to step
# again at once, or None (it is due again later, or no longer this worker's).
STEPS: dict[uj.JobState, Step] = {
    uj.JobState.ASSEMBLING: sending.assembling,
    uj.JobState.UPLOADED: sending.uploaded,
    uj.JobState.SUBMITTED: polling.poll,
    uj.JobState.ENDED: results.download,
}


class UpstreamJobDriver:
    """Drives the upstream jobs of one provider-batch model on this worker."""

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
        self.ctx = Context(
            store,
            backend,
            model,
            options=options,
            policy=policy,
            metrics=metrics,
            worker_id=worker_id,
        )
        self.steps: dict[str, asyncio.Task[None]] = {}

    @property
    def tick_seconds(self) -> float:
        """Often enough to notice an ended job within its poll interval,
        never more often than the worker polls for work."""
        options = self.ctx.options
        return max(options.poll_seconds, min(self.ctx.limits.poll_seconds, options.sweep_seconds))

    async def run(self, draining: asyncio.Event) -> None:
        """Tick until ``draining``; then let the steps in flight finish (up to
        the drain grace period) and hand the jobs' leases back."""
        while not draining.is_set():
            await self.tick()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(draining.wait(), self.tick_seconds)
        await self._stop()

    async def tick(self) -> None:
        parts = (("flush", self._flush), ("fallback", self._fall_back), ("step", self._step_due))
        for name, part in parts:
            try:
                await part()
            except Exception:  # the store is down, a bug: next tick tries again
                log.exception("upstream jobs of %s: %s failed", self.ctx.model.name, name)

    async def _stop(self) -> None:
        deadline = time.monotonic() + self.ctx.options.drain_seconds
        await _finish(list(self.steps.values()), deadline)
        # A step that finished its job just now started its files' delete.
        await _finish(list(self.ctx.deletes), deadline)
        await lease.release_all(self.ctx)

    # -- flush ------------------------------------------------------------------
    async def _flush(self) -> None:
        """New jobs of the model's queued rows, whichever tenant's batch
        they come from, while one is due (``uj.flush_at``: full, waited
        ``flush_after_seconds``, or a deadline needs it), at most the
        model's current job size (halved after each refusal as too large)."""
        ctx = self.ctx
        now = time.time()
        if now < ctx.flush_not_before:
            return
        limits = dataclasses.replace(ctx.limits, max_requests=ctx.size)
        turnaround = await self.turnaround(now)
        for _ in range(MAX_JOBS_PER_FLUSH):
            pending = await asyncio.to_thread(ctx.store.pending_upstream_work, ctx.model.name, now)
            due = uj.flush_at(pending, limits, turnaround)
            if due is None or due > now or not await self._assemble(now):
                return

    async def _assemble(self, now: float) -> bool:
        ctx = self.ctx
        job = uj.UpstreamJob(
            id=ids.new_upstream_job_id(),
            model=ctx.model.name,
            kind=ctx.backend.kind,
            endpoint=ctx.backend.endpoint,
            state=uj.JobState.ASSEMBLING,
            created_at=now,
            lease_owner=ctx.worker_id,
            lease_expires_at=now + ctx.options.lease_seconds,
        )
        held = await asyncio.to_thread(ctx.store.assemble_job, job, ctx.size, now)
        if not held:
            return False
        ctx.fresh.add(job.id)
        ctx.leased.add(job.id)
        log.info(
            "upstream job %s assembled: %d requests of %s",
            job.id,
            len(held),
            ctx.model.name,
            extra={"event": "upstream_job_assembled", "job_id": job.id, "requests": len(held)},
        )
        return True

    async def turnaround(self, now: float) -> float:
        """The median time the provider took over the model's recent jobs
        (0 while none has completed), read at most once a minute."""
        ctx = self.ctx
        value, read_at = ctx.turnaround
        if now - read_at < TURNAROUND_REFRESH_SECONDS:
            return value
        recent = await asyncio.to_thread(
            ctx.store.list_jobs,
            model=ctx.model.name,
            states=[uj.JobState.ENDED],
            limit=uj.TURNAROUND_JOBS,
        )
        value, _ = uj.measured_turnaround(recent)
        ctx.turnaround = (value, now)
        return value

    # -- fallback ---------------------------------------------------------------
    async def _fall_back(self) -> None:
        """Rows of jobs not yet at the provider whose window is running out
        go to the real-time lane. A submitted job's own step moves its rows,
        because it must cancel its batch as well (polling.py)."""
        ctx = self.ctx
        if ctx.backend.realtime is None:
            return
        now = time.time()
        due = await asyncio.to_thread(
            ctx.store.fallback_due, ctx.model.name, now + ctx.limits.sync_fallback_before
        )
        for job_id, request_ids in due.items():
            job = await asyncio.to_thread(ctx.store.get_job, job_id)
            if job is None or job.state is uj.JobState.SUBMITTED:
                continue
            await ctx.release(job_id, request_ids, now, route=uj.Path.REALTIME)

    # -- stepping jobs ----------------------------------------------------------
    async def _step_due(self) -> None:
        ctx = self.ctx
        room = MAX_STEPS - len(self.steps)
        if room <= 0:
            return
        jobs = await asyncio.to_thread(
            ctx.store.claim_due_jobs,
            [ctx.model.name],
            ctx.worker_id,
            time.time(),
            ctx.options.lease_seconds,
            room + len(self.steps),
        )
        for job in jobs:
            ctx.leased.add(job.id)
            if job.id not in self.steps:
                self.steps[job.id] = asyncio.create_task(self.step(job), name=f"ujob:{job.id}")

    async def step(self, job: uj.UpstreamJob) -> None:
        """Take ``job`` as far as it can go now, its lease kept alive."""
        keeper = asyncio.create_task(lease.keep(self.ctx, job.id, asyncio.current_task()))
        try:
            await self._advance(job)
            self.ctx.failures.pop(job.id, None)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await step_errors.step_failed(self.ctx, job, exc)
        finally:
            keeper.cancel()
            self.steps.pop(job.id, None)

    async def _advance(self, job: uj.UpstreamJob) -> None:
        current: uj.UpstreamJob | None = job
        while current is not None and not current.done:
            current = await STEPS[current.state](self.ctx, current)
        if current is not None:
            cleanup.done(self.ctx, current)


async def _finish(tasks: list[asyncio.Task[None]], deadline: float) -> None:
    """Let ``tasks`` finish until ``deadline`` (monotonic); cancel the rest."""
    if not tasks:
        return
    _, late = await asyncio.wait(tasks, timeout=max(deadline - time.monotonic(), 0.0))
    for task in late:
        task.cancel()
    await asyncio.gather(*late, return_exceptions=True)
