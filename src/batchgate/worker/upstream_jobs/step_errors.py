"""A step that failed (an upstream error, the store down, a bug): recorded
on the job (``last_error``) and tried again after a back-off; a final
upstream answer repeated ``max_attempts`` times gives the job up. Nothing
here may stop the worker."""

from __future__ import annotations

import asyncio
import logging
import time

from batchgate.backends import base
from batchgate.domain import failures
from batchgate.domain import upstream_jobs as uj
from batchgate.domain.states import RequestState
from batchgate.worker import upstream_lines as lines
from batchgate.worker.upstream_jobs import cleanup, results
from batchgate.worker.upstream_jobs.context import Context, why

log = logging.getLogger("batchgate.upstream")


async def step_failed(ctx: Context, job: uj.UpstreamJob, exc: Exception) -> None:
    """Record the failure and when to try again, or give the job up."""
    ctx.failures[job.id] += 1
    count = ctx.failures[job.id]
    final = isinstance(exc, base.BackendError) and not exc.retryable
    if not isinstance(exc, base.BackendError):
        log.exception("upstream job %s: step failed", job.id, exc_info=exc)
    else:
        log.warning("upstream job %s: step failed (%s), retrying later", job.id, exc)
    attempts = ctx.policy.max_attempts
    try:
        if final and attempts is not None and count >= attempts:
            await _give_up(ctx, job.id, exc)
            return
        retry_after = exc.retry_after if isinstance(exc, base.BackendError) else None
        delay = max(
            min(ctx.policy.backoff(count), ctx.limits.poll_max_seconds),
            ctx.limits.poll_seconds,
            retry_after or 0.0,
        )
        update = uj.JobUpdate(last_error=why(exc), next_poll_at=time.time() + delay)
        await ctx.update(job, update)
    except Exception:  # the store is down too: the lease runs out
        log.exception("upstream job %s: could not record its failure", job.id)


async def _give_up(ctx: Context, job_id: str, exc: Exception) -> None:
    """A job the upstream keeps refusing for good: rows not yet sent end
    errored with the upstream's answer; rows of a batch that exists are
    settled (re-queued, fallen back or expired); the job ends failed."""
    job = await asyncio.to_thread(ctx.store.get_job, job_id)
    if job is None:
        return
    if job.state in (uj.JobState.ASSEMBLING, uj.JobState.UPLOADED) and isinstance(
        exc, base.BackendError
    ):
        held = await ctx.held_rows(job.id)
        error = exc.request_error()
        await ctx.record(
            [lines.ended(row, job.id, RequestState.ERRORED, error) for row in held],
            {row.batch_id for row in held},
        )
    else:
        error = failures.RequestError(failures.ErrorType.API, f"upstream job: {why(exc)}")
        await results.settle(ctx, job, error)
    ended = await ctx.end(job, uj.EndStatus.FAILED, f"given up: {why(exc)}")
    if ended is None:
        ctx.forget(job.id)
    else:
        cleanup.done(ctx, ended)
