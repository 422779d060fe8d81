"""Retention rules: how long results, files and upstream jobs are kept, and
what a client is told once they are gone. Pure; the purge itself is the store's
(``purge_step``), driven by worker/retention.py."""

from __future__ import annotations

import datetime

from batchgate.domain import errors
from batchgate.domain import upstream_jobs as uj

# OpenAI's bounds for ``output_expires_after`` and a file's ``expires_after``.
MIN_SECONDS = 3600  # 1 hour
MAX_SECONDS = 30 * 86400  # 30 days
ANCHORS = ("created_at",)


def check_expires_after(anchor: object, seconds: object, param: str) -> int:
    """Validate an ``{anchor, seconds}`` policy as OpenAI does; returns the
    seconds. ``param`` names the field in errors (``expires_after``)."""
    if anchor not in ANCHORS:
        raise errors.InvalidRequest(
            f"{param}.anchor must be one of: {', '.join(ANCHORS)}; got {anchor!r}",
            param=f"{param}.anchor",
            code="invalid_value",
        )
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        raise errors.InvalidRequest(
            f"{param}.seconds must be an integer number of seconds; got {seconds!r}",
            param=f"{param}.seconds",
            code="invalid_type",
        )
    if not MIN_SECONDS <= seconds <= MAX_SECONDS:
        raise errors.InvalidRequest(
            f"{param}.seconds must be between {MIN_SECONDS} (1 hour) and {MAX_SECONDS} "
            f"(30 days); got {seconds}",
            param=f"{param}.seconds",
            code="invalid_value",
        )
    return seconds


def expiry(start: float, ttl: int | None) -> float | None:
    """When something that lives ``ttl`` seconds from ``start`` expires
    (None: never)."""
    return None if ttl is None else start + ttl


# Upstream jobs (domain/upstream_jobs.py) are purged by a rule of their own,
# since no tenant sets their lifetime: a job goes once all three hold.
#
# 1. It is done (ended, results downloaded): nothing will read or write it.
# 2. No request row names it (``upstream_job_id``). A kept batch's page lists
#    the jobs its rows name, so a job lives as long as the longest-kept row it
#    served: rows go when their batch's results expire (the results TTL, or
#    the tenant's ``output_expires_after``; never, if results are kept
#    forever), and a row re-queued into a later job names that job instead.
#    This follows each batch's own TTL, which a rule of "older than the
#    longest TTL" could not (a TTL is per batch, and may be forever).
# 3. It ended at least ``JOB_KEEP_SECONDS`` ago: a driver recovering from a
#    crash tells an Anthropic batch apart from other jobs' batches by the ids
#    jobs recorded over that long (``uj.RECORDED_LOOKBACK_SECONDS``), and the
#    flush and the dry run's ETA read the turnaround of a model's recent jobs.
#    (Only a job stuck unsent for as long, whose rows are long gone, could
#    still match a purged job's batch; it would adopt it and write nothing.)
JOB_KEEP_SECONDS = uj.RECORDED_LOOKBACK_SECONDS


def job_purgeable(job: uj.UpstreamJob, now: float, referenced: bool) -> bool:
    """Whether retention may delete ``job`` now (``referenced``: a request
    row still names it)."""
    return (
        job.done
        and not referenced
        and job.ended_at is not None
        and job.ended_at <= now - JOB_KEEP_SECONDS
    )


def _utc(moment: float) -> str:
    return datetime.datetime.fromtimestamp(moment, tz=datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def results_expired(batch_id: str, at: float) -> errors.NotFound:
    """The 404 for results past their retention."""
    return errors.NotFound(
        f"the results of batch {batch_id!r} expired at {_utc(at)} and are no longer available",
        param="batch_id",
        code="expired",
    )


def file_expired(file_id: str, at: float) -> errors.NotFound:
    """The 404 for a file past its ``expires_at``."""
    return errors.NotFound(
        f"file {file_id!r} expired at {_utc(at)} and is no longer available",
        param="file_id",
        code="expired",
    )
