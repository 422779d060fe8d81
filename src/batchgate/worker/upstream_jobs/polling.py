"""A submitted job: its batch polled with back-off until it ends, and
cancelled at the provider when none of its rows is left to serve (the
tenants cancelled them) or some just fell back to the real-time lane."""

from __future__ import annotations

import logging
import time

from batchgate.backends import base
from batchgate.backends import provider_batch as pb
from batchgate.domain import upstream_jobs as uj
from batchgate.worker.upstream_jobs import sending
from batchgate.worker.upstream_jobs.context import ERROR_CHARS, Context

log = logging.getLogger("batchgate.upstream")


async def poll(ctx: Context, job: uj.UpstreamJob) -> uj.UpstreamJob | None:
    """Ask the provider how the batch does. A batch none of whose rows the
    job still holds (cancelled), or some of whose rows just fell back to
    the real-time upstream, is cancelled there first (once)."""
    batch_id = job.upstream_batch_id
    assert batch_id is not None
    hold, fell_back = await ctx.hold(job)
    if (fell_back or not hold.count) and job.cancel_requested_at is None:
        batch = await _cancel(ctx, batch_id)
        log.info(
            "upstream job %s: batch %s cancelled upstream (%s)",
            job.id,
            batch_id,
            "rows fell back" if fell_back else "no rows left",
            extra={"event": "upstream_job_cancelled", "job_id": job.id},
        )
        # Polled afresh: a cancelled batch ends soon.
        cancelled = await ctx.update(job, uj.JobUpdate(cancel_requested_at=time.time(), polls=0))
        if cancelled is None:
            return None
        job = cancelled
    else:
        batch = await ctx.client.get(batch_id)
    if batch.end_status is None:
        polls = job.polls + 1
        next_poll = _next_poll(ctx, hold, polls, time.time())
        await ctx.update(
            job,
            uj.JobUpdate(upstream_status=batch.status, polls=polls, next_poll_at=next_poll),
        )
        return None
    return await _ended(ctx, job, batch)


async def _cancel(ctx: Context, batch_id: str) -> pb.UpstreamBatch:
    """Cancel the batch upstream; one the provider will not cancel for good
    (it has just ended) is read as it is instead."""
    try:
        return await ctx.client.cancel(batch_id)
    except base.BackendError as exc:
        if exc.retryable:
            raise
        log.info("batch %s was not cancelled (%s); reading it instead", batch_id, exc)
        return await ctx.client.get(batch_id)


def _next_poll(ctx: Context, hold: uj.Hold, polls: int, now: float) -> float:
    """With back-off, but no later than the moment the first held row must
    fall back to the real-time upstream."""
    due = now + uj.next_poll_delay(polls, ctx.limits)
    if ctx.backend.realtime is not None and hold.earliest_deadline is not None:
        first = hold.earliest_deadline - ctx.limits.sync_fallback_before
        due = min(due, max(first, now))
    return due


async def _ended(
    ctx: Context, job: uj.UpstreamJob, batch: pb.UpstreamBatch
) -> uj.UpstreamJob | None:
    """The batch ended: recorded (its results are downloaded next), or, a
    batch failed as too large, refused like a create would have been."""
    if batch.refusal is not None:
        return await sending.refused(ctx, job, batch.refusal)
    assert batch.end_status is not None
    now = time.time()
    ended = await ctx.update(
        job,
        uj.JobUpdate(
            state=uj.JobState.ENDED,
            end_status=batch.end_status,
            ended_at=now,
            upstream_status=batch.status,
            output_file_id=batch.output_file_id,
            error_file_id=batch.error_file_id,
            last_error=None if batch.error is None else batch.error[:ERROR_CHARS],
        ),
    )
    if ended is not None:
        turnaround = None if job.submitted_at is None else now - job.submitted_at
        ctx.metrics.job_ended(ctx.model.name, batch.end_status.value, turnaround)
        ctx.turnaround = (ctx.turnaround[0], float("-inf"))  # read it again
    return ended
