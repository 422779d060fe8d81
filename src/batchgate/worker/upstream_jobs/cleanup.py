"""A done job (ended, its results in the store): forgotten by this
process, and what the provider keeps for it deleted there
(``BatchClient.delete_upstream``: OpenAI's files; an Anthropic batch is
kept), tried a few times with back-off, then logged and left."""

from __future__ import annotations

import asyncio
import logging

from batchgate.backends import base
from batchgate.domain import upstream_jobs as uj
from batchgate.worker.upstream_jobs.context import Context, why

log = logging.getLogger("batchgate.upstream")

# Deleting a done job's files at the provider: tried this often, then the
# files are left there (logged); the job itself is done either way.
DELETE_ATTEMPTS = 3


def done(ctx: Context, job: uj.UpstreamJob) -> None:
    """A job is done: forget it, and delete its files at the provider (in
    the background; a draining worker waits for it a while)."""
    ctx.forget(job.id)
    task = asyncio.create_task(_delete_upstream(ctx, job), name=f"ujob-delete:{job.id}")
    ctx.deletes.add(task)
    task.add_done_callback(ctx.deletes.discard)


async def _delete_upstream(ctx: Context, job: uj.UpstreamJob) -> None:
    """Tried ``DELETE_ATTEMPTS`` times while the provider's answer is
    retryable, then logged and left, never tried forever."""
    for attempt in range(1, DELETE_ATTEMPTS + 1):
        try:
            await ctx.client.delete_upstream(job)
            return
        except Exception as exc:
            retryable = isinstance(exc, base.BackendError) and exc.retryable
            if not retryable or attempt == DELETE_ATTEMPTS:
                log.warning(
                    "upstream job %s: its files at the provider were not deleted (%s); "
                    "they stay there",
                    job.id,
                    why(exc),
                    extra={"event": "upstream_delete_failed", "job_id": job.id},
                )
                return
        await asyncio.sleep(min(ctx.policy.backoff(attempt), ctx.limits.poll_max_seconds))
