"""Sending a job: assembling -> (find or upload the file) -> uploaded ->
(find or create the batch) -> submitted. A kind without files (Anthropic)
goes from assembling straight to the create, its requests in it.

Each step looks upstream before it creates anything (adoption.py). A job
that holds no rows any more ends without sending anything; one the
provider refuses as too large hands its rows back and halves the model's
job size."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from batchgate.backends import provider_batch as pb
from batchgate.domain import upstream_jobs as uj
from batchgate.domain.states import RequestState
from batchgate.store import port
from batchgate.worker import upstream_lines as lines
from batchgate.worker.upstream_jobs import adoption
from batchgate.worker.upstream_jobs.context import Context

log = logging.getLogger("batchgate.upstream")

MARK_CHUNK = 500  # request ids per mark_generating write


async def assembling(ctx: Context, job: uj.UpstreamJob) -> uj.UpstreamJob | None:
    """Render the rows the job holds and upload them (a file found at the
    provider is adopted instead)."""
    held, _ = await ctx.held(job, with_params=True)
    if not held:
        return await end_unsent(ctx, job)
    if not ctx.client.uploads_file:
        return await _send_requests(ctx, job, held)
    file_id = await adoption.find_file(ctx, job)
    if file_id is not None:
        return await ctx.update(
            job, uj.JobUpdate(state=uj.JobState.UPLOADED, upstream_file_id=file_id)
        )
    encoded = await _encode(ctx, job, held)
    if not encoded.lines:
        return await end_unsent(ctx, job)
    counted = await ctx.update(
        job, uj.JobUpdate(request_count=len(encoded.lines), bytes=encoded.bytes)
    )
    if counted is None:
        return None
    # From here on a file may exist upstream: a repeat looks for it.
    ctx.fresh.discard(job.id)
    file_id = await ctx.client.upload(counted, encoded.lines)
    return await ctx.update(
        counted, uj.JobUpdate(state=uj.JobState.UPLOADED, upstream_file_id=file_id)
    )


async def uploaded(ctx: Context, job: uj.UpstreamJob) -> uj.UpstreamJob | None:
    """Create the batch from the uploaded file (one found is adopted)."""
    hold, _ = await ctx.hold(job)
    if not hold.count:
        return await end_unsent(ctx, job)
    async with ctx.create_lock:
        found = await adoption.find_batch(ctx, job)
        if found is not None:
            return await submitted(ctx, job, found)
        return await _create(ctx, job, [])


async def _send_requests(
    ctx: Context, job: uj.UpstreamJob, held: list[uj.HeldRequest]
) -> uj.UpstreamJob | None:
    """A kind without files (Anthropic): the requests go in the create."""
    async with ctx.create_lock:
        # Looked for with the count recorded before the create began.
        found = await adoption.find_batch(ctx, job)
        if found is not None:
            return await submitted(ctx, job, found)
        encoded = await _encode(ctx, job, held)
        if not encoded.lines:  # looked for above: no batch exists
            return await ctx.end(job, uj.EndStatus.CANCELLED, None)
        counted = await ctx.update(
            job, uj.JobUpdate(request_count=len(encoded.lines), bytes=encoded.bytes)
        )
        if counted is None:
            return None
        return await _create(ctx, counted, encoded.lines)


async def _encode(ctx: Context, job: uj.UpstreamJob, held: list[uj.HeldRequest]) -> lines.Encoded:
    """The job's lines; rows the upstream cannot carry end errored, rows
    past the byte limit go back to the queue."""
    encoded = await asyncio.to_thread(lines.encode, ctx.backend, held)
    if encoded.refused:
        outcomes = [
            lines.ended(row, job.id, RequestState.ERRORED, error) for row, error in encoded.refused
        ]
        await ctx.record(outcomes, {row.batch_id for row, _ in encoded.refused})
    overflow = [row.id for row in encoded.overflow]
    await ctx.release(job.id, overflow, time.time())
    return encoded


async def _create(
    ctx: Context, job: uj.UpstreamJob, requests: Sequence[bytes]
) -> uj.UpstreamJob | None:
    """Create the batch (the create lock held). ``create_started_at`` is
    recorded first: a crash after this point looks before creating."""
    started = await adoption.start_create(ctx, job)
    if started is None:
        return None
    try:
        batch = await ctx.client.create(started, requests)
    except pb.JobTooLarge as exc:
        return await refused(ctx, started, exc.reason)
    ctx.refusals = 0
    return await submitted(ctx, started, batch)


async def submitted(
    ctx: Context, job: uj.UpstreamJob, batch: pb.UpstreamBatch
) -> uj.UpstreamJob | None:
    """The job's batch is at the provider (created, or found and adopted):
    record it, show its rows as generating, and poll it when due."""
    now = time.time()
    recorded = await ctx.update(
        job,
        uj.JobUpdate(
            state=uj.JobState.SUBMITTED,
            upstream_batch_id=batch.id,
            submitted_at=now,
            upstream_status=batch.status,
            polls=0,
            next_poll_at=now + uj.next_poll_delay(0, ctx.limits),
        ),
    )
    log.info(
        "upstream job %s submitted as batch %s",
        job.id,
        batch.id,
        extra={"event": "upstream_job_submitted", "job_id": job.id, "batch": batch.id},
    )
    if recorded is not None:
        await _mark_generating(ctx, job.id)
    return None  # polled when due


async def _mark_generating(ctx: Context, job_id: str) -> None:
    """The provider works on the job's rows now: they show as generating,
    not as claimed (which says they wait for a call slot). The job holds
    them as a worker would (their lease owner is the job id), so the mark
    is fenced on the job. Only what the pages show: a failure is logged."""
    try:
        await asyncio.to_thread(_mark_held, ctx.store, job_id, time.time())
    except Exception:
        log.exception("upstream job %s: could not mark its rows generating", job_id)


def _mark_held(store: port.QueueStore, job_id: str, now: float) -> None:
    held = sorted(store.held_request_ids(job_id))
    for start in range(0, len(held), MARK_CHUNK):
        store.mark_generating(job_id, held[start : start + MARK_CHUNK], now)


async def end_unsent(ctx: Context, job: uj.UpstreamJob) -> uj.UpstreamJob | None:
    """A job not at the provider that holds no rows (all cancelled, fell
    back or refused) ends cancelled, unless a create may have made its
    batch after all: then that batch is adopted, and cancelled."""
    async with ctx.create_lock:
        found = await adoption.find_batch(ctx, job)
        if found is not None:
            return await submitted(ctx, job, found)
    return await ctx.end(job, uj.EndStatus.CANCELLED, None)


async def refused(ctx: Context, job: uj.UpstreamJob, reason: str) -> uj.UpstreamJob | None:
    """The provider refused the job as too large: its rows go back to the
    queue, and the model's jobs are half this size from now on."""
    held = await ctx.held_rows(job.id)
    now = time.time()
    if len(held) == 1 and job.request_count <= 1:
        # Alone and still too large: no smaller job can carry it.
        refusal = lines.refused_too_large(reason)
        await ctx.record(
            [lines.ended(held[0], job.id, RequestState.ERRORED, refusal)], {held[0].batch_id}
        )
    else:
        await ctx.release(job.id, [row.id for row in held], now)
    ctx.size = min(ctx.size, uj.smaller_job(max(job.request_count, len(held), 1)))
    ctx.refusals += 1
    ctx.flush_not_before = now + ctx.policy.backoff(ctx.refusals)
    ctx.metrics.job_refused(ctx.model.name, reason)
    log.warning(
        "upstream job %s of %d requests refused as too large (%s); jobs of %s now hold at most %d",
        job.id,
        job.request_count,
        reason,
        ctx.model.name,
        ctx.size,
        extra={"event": "upstream_job_refused", "job_id": job.id, "reason": reason},
    )
    why = f"refused by the upstream as too large ({reason}); its requests were re-queued"
    return await ctx.end(job, uj.EndStatus.FAILED, why)
