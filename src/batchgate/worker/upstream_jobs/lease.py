"""Keeping a job's lease: a job is leased to one worker at a time
(``UpstreamJobStore.claim_due_jobs``, fenced on ``lease_owner``), and every
change to it extends the lease. A long step (an upload, a download) extends
it on its own while it runs; a draining worker hands its jobs back at once,
so the next worker need not wait the lease out."""

from __future__ import annotations

import asyncio
import logging
import time

from batchgate.domain import upstream_jobs as uj
from batchgate.worker.upstream_jobs.context import Context

log = logging.getLogger("batchgate.upstream")


async def keep(ctx: Context, job_id: str, step: asyncio.Task[None] | None) -> None:
    """Extend the job's lease while ``step`` runs; stop the step if another
    worker has the job now."""
    while True:
        await asyncio.sleep(ctx.options.lease_seconds / 3)
        try:
            kept = await asyncio.to_thread(
                ctx.store.update_job,
                job_id,
                ctx.worker_id,
                uj.JobUpdate(),
                time.time(),
                ctx.options.lease_seconds,
            )
        except Exception:
            log.exception("could not extend the lease of upstream job %s", job_id)
            continue
        if kept is None and step is not None:
            log.warning("upstream job %s: lease lost mid-step; stopping it", job_id)
            step.cancel()
            return


async def release_all(ctx: Context) -> None:
    """Hand back the leases of every job this worker claimed (it drains)."""
    for job_id in sorted(ctx.leased):
        try:
            await asyncio.to_thread(ctx.store.release_job_lease, job_id, ctx.worker_id)
        except Exception:  # its lease runs out instead
            log.exception("could not release upstream job %s", job_id)
    ctx.leased.clear()
