"""Crash adoption: before anything is created upstream, look for it.

A crash (or a lost reply) may leave a file or a batch at the provider that
the job never recorded. So a repeated step first looks: the input file by
its name (``uj.job_marker``), the batch once a create may have begun
(``create_started_at``, recorded before every create) by its metadata
(OpenAI) or by its creation time and size (Anthropic, whose batches carry no
metadata). A kind found by time has one create unresolved at a time across
the fleet (``UpstreamJobStore.start_create``), so a batch found that way is
this job's and no other's."""

from __future__ import annotations

import asyncio
import logging
import time

from batchgate.backends import provider_batch as pb
from batchgate.domain import upstream_jobs as uj
from batchgate.worker.upstream_jobs.context import Context

log = logging.getLogger("batchgate.upstream")


async def find_file(ctx: Context, job: uj.UpstreamJob) -> str | None:
    """The job's input file at the provider, unless this process assembled
    the job and never sent it (then there is none to find)."""
    if job.id in ctx.fresh:
        return None
    return await ctx.client.find_file(job)


async def find_batch(ctx: Context, job: uj.UpstreamJob) -> pb.UpstreamBatch | None:
    """The provider's batch for ``job`` if a create may have begun; batches
    other jobs recorded are not it."""
    if job.create_started_at is None:
        return None
    recorded = await asyncio.to_thread(
        ctx.store.recorded_upstream_batch_ids,
        job.kind,
        job.create_started_at - uj.RECORDED_LOOKBACK_SECONDS,
    )
    if job.upstream_batch_id is not None:
        recorded.discard(job.upstream_batch_id)
    found = await ctx.client.find_batch(job, recorded)
    if found is not None:
        log.info(
            "upstream job %s: adopted batch %s found upstream",
            job.id,
            found.id,
            extra={"event": "upstream_job_adopted", "job_id": job.id, "batch": found.id},
        )
    return found


async def start_create(ctx: Context, job: uj.UpstreamJob) -> uj.UpstreamJob | None:
    """Record that the create begins. A kind whose lost batches are found
    by time (Anthropic) waits while another job's create is unresolved (a
    crashed worker's, until its lease runs out and the job is found or
    made): two such batches could each be taken for the other's, and their
    rows sent and billed twice."""
    now = time.time()
    if not ctx.client.matches_by_time:
        return await ctx.update(job, uj.JobUpdate(create_started_at=now))
    started = await asyncio.to_thread(
        ctx.store.start_create, job.id, ctx.worker_id, now, ctx.options.lease_seconds
    )
    if started is None:
        log.info(
            "upstream job %s waits: another job's create is not resolved yet",
            job.id,
            extra={"event": "upstream_create_waits", "job_id": job.id},
        )
        await ctx.update(job, uj.JobUpdate(next_poll_at=now + ctx.limits.poll_seconds))
    return started
