"""An ended job's results: the provider's output (and error) lines
streamed into the rows the job holds, a group per write, then the rows no
line answered settled (queued again, to the real-time lane, or expired).

Every write is fenced on the job (``worker_id = job id``), so a download
repeated after a crash writes nothing twice; a line whose row the job no
longer holds (cancelled, fell back) is the operator's loss."""

from __future__ import annotations

import asyncio
import functools
import logging
import time

from batchgate.backends import provider_batch as pb
from batchgate.domain import failures
from batchgate.domain import upstream_jobs as uj
from batchgate.worker import upstream_lines as lines
from batchgate.worker.upstream_jobs.context import Context

log = logging.getLogger("batchgate.upstream")

GROUP = 500  # result lines per outcome write (one transaction)
# A smaller group is written once this long has passed since the last write
# (checked as lines arrive): a huge or slow output shows its rows as they
# come, and a crash mid-download has written what came before it.
WRITE_SECONDS = 1.0


async def download(ctx: Context, job: uj.UpstreamJob) -> uj.UpstreamJob | None:
    """Stream the results into the rows the job holds, a group at a time
    (``GROUP`` lines, or what came in ``WRITE_SECONDS``: a job's results are
    never all in memory, and its rows show as they come), then settle the
    rows no line answered."""
    if job.upstream_batch_id is None:
        return await ctx.end(job, uj.EndStatus.CANCELLED, None)
    seen = ctx.seen.setdefault(job.id, set())
    group: dict[int, pb.ResultLine] = {}
    written_at = time.monotonic()
    async for line in ctx.client.results(_batch_of(job)):
        if line.request_id in seen or line.request_id in group:
            continue  # a line the upstream repeated, or one written before
        group[line.request_id] = line
        if len(group) >= GROUP or time.monotonic() - written_at >= WRITE_SECONDS:
            await _write(ctx, job, group)
            group = {}
            written_at = time.monotonic()
    if group:
        await _write(ctx, job, group)
    await settle(ctx, job, _failure(job))
    done = await ctx.update(job, uj.JobUpdate(downloaded_at=time.time()))
    if done is not None:
        log.info(
            "upstream job %s done (%s)",
            job.id,
            job.end_status,
            extra={"event": "upstream_job_done", "job_id": job.id},
        )
    return done


async def _write(ctx: Context, job: uj.UpstreamJob, lines_by_id: dict[int, pb.ResultLine]) -> None:
    """One group of result lines into their rows, fenced on the job. A line
    whose row the job no longer holds (cancelled, fell back) was paid for
    all the same: the operator's loss."""
    held = await asyncio.to_thread(ctx.store.job_requests, job.id, list(lines_by_id))
    gone = set(lines_by_id) - {row.id for row in held}
    gone_params = (
        await asyncio.to_thread(ctx.store.dropped_params, job.id, sorted(gone)) if gone else {}
    )
    group = await asyncio.to_thread(
        lines.read_group,
        job.id,
        ctx.backend,
        ctx.model,
        ctx.policy,
        lines_by_id,
        held,
        gone_params,
        time.time(),
    )
    applied = await ctx.record(group.outcomes, group.batch_ids)
    dropped = group.dropped
    dropped += sum(o.cost for o, ok in zip(group.outcomes, applied, strict=True) if not ok)
    ctx.seen.setdefault(job.id, set()).update(lines_by_id)
    ctx.metrics.upstream_cost(ctx.model.name, uj.Path.BATCH.value, group.paid)
    if dropped:
        ctx.metrics.dropped_cost(ctx.model.name, dropped)


async def settle(
    ctx: Context, job: uj.UpstreamJob, failed: failures.RequestError | None = None
) -> None:
    """Rows no result line answered (a failed, expired or cancelled batch;
    lines missing): back to the queue while their window has room for
    another job, else to the real-time lane while it has any room at all,
    else expired. The job's fate is not theirs, so their attempt is
    refunded, unless the provider ``failed`` the batch: that may be for its
    input (one line it refused fails a whole OpenAI batch), so it counts as
    an attempt, and the retry policy ends it."""
    now = time.time()
    held = await ctx.held_rows(job.id)
    realtime = ctx.backend.realtime is not None
    room = ctx.limits.sync_fallback_before if realtime else 0.0
    again = [row for row in held if row.deadline - now > room]
    late = [row for row in held if row.deadline - now <= room]
    fall_back = [row.id for row in late if realtime and row.deadline > now]
    expire = [row for row in late if not (realtime and row.deadline > now)]
    if failed is None:
        await ctx.release(job.id, [row.id for row in again], now)
    else:
        result = functools.partial(pb.LineResult, error=failed, retryable=True)
        outcomes = [
            lines.outcome(result(row.id), row, job.id, ctx.model, ctx.policy, now) for row in again
        ]
        await ctx.record(outcomes, {row.batch_id for row in again})
    await ctx.release(job.id, fall_back, now, route=uj.Path.REALTIME)
    if expire:
        await asyncio.to_thread(
            ctx.store.expire_job_requests, job.id, [row.id for row in expire], now
        )
        await ctx.finalize({row.batch_id for row in expire}, now)


def _failure(job: uj.UpstreamJob) -> failures.RequestError | None:
    """What the rows of a batch the provider failed were told."""
    if job.end_status is not uj.EndStatus.FAILED:
        return None
    why = job.last_error or "no reason given"
    return failures.RequestError(failures.ErrorType.API, f"the upstream batch failed: {why}")


def _batch_of(job: uj.UpstreamJob) -> pb.UpstreamBatch:
    """The ended batch as the job recorded it (what ``results`` reads)."""
    assert job.upstream_batch_id is not None
    return pb.UpstreamBatch(
        id=job.upstream_batch_id,
        status=job.upstream_status or "ended",
        end_status=job.end_status,
        created_at=job.submitted_at or job.created_at,
        output_file_id=job.output_file_id,
        error_file_id=job.error_file_id,
        request_total=job.request_count,
        job_id=job.id,
    )
