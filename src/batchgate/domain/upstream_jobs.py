"""Upstream jobs: requests handed to a provider's own batch API.

A model whose backend is ``openai_batch`` or ``anthropic_batch`` is not
served one call per request: its queued requests, whichever tenant's batch
they come from, are packed into *upstream jobs*. Each job becomes exactly one
batch at the provider (an OpenAI Files + Batch job, or an Anthropic Message
Batch), is polled until it ends, and its results are written back to the
rows it holds. This module holds the pure rules: the job's states and their
transitions, when a job is due to be sent, how big it may be, the poll
back-off, and when a row must leave its job for the real-time path.

A job holds its rows the way a worker does: their ``lease_owner`` is the job
id and their state ``running``, so every outcome write is fenced on the job
(``QueueStore.record_outcomes`` with ``worker_id = job.id``), and a row the
tenant cancelled, or that fell back to the real-time path, cannot be written
by the job any more.

The upstream ``custom_id`` of a row is its request id (``str(request.id)``):
tenants' custom_ids never leave the gateway and cannot collide across
tenants.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import statistics
from collections.abc import Iterable
from typing import Any

from batchgate.domain.states import RequestState


class JobState(enum.StrEnum):
    """Where a job is on its way through the provider.

    assembling: rows claimed; the input not yet at the provider (OpenAI: the
    file not yet recorded as uploaded).
    uploaded: the input file is at the provider (OpenAI only; an Anthropic
    job carries its requests in the create call and skips this state).
    submitted: the provider's batch exists and its id is recorded.
    ended: the provider says the batch ended (``end_status``); its results are
    downloaded when ``downloaded_at`` is set, and then the job is done.
    """

    ASSEMBLING = "assembling"
    UPLOADED = "uploaded"
    SUBMITTED = "submitted"
    ENDED = "ended"


class EndStatus(enum.StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


# The job state machine: the single statement of which moves are legal. A job
# may end from any state before it is submitted too: a job refused by the
# provider at create (``failed``), or whose rows all left it before it was
# sent (``cancelled``), ends without an upstream batch.
JOB_TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.ASSEMBLING: frozenset({JobState.UPLOADED, JobState.SUBMITTED, JobState.ENDED}),
    JobState.UPLOADED: frozenset({JobState.SUBMITTED, JobState.ENDED}),
    JobState.SUBMITTED: frozenset({JobState.ENDED}),
    JobState.ENDED: frozenset(),
}

# How long a job holds its rows (their lease): longer than any provider's
# window (24 h), so the tenant's expiry sweep, not the lease, ends the rows
# whose window ran out; a lease that does run out (a job lost for good) lets
# the lost-lease sweep requeue them.
JOB_ROW_LEASE_SECONDS = 26 * 3600.0

OPEN_JOB_STATES = frozenset({JobState.ASSEMBLING, JobState.UPLOADED, JobState.SUBMITTED})

# After a crash an Anthropic batch is matched to its job by creation time and
# size, and told apart from other jobs' batches by the ids those jobs
# recorded: jobs made up to this long before the create began
# (``UpstreamJobStore.recorded_upstream_batch_ids``). Retention keeps every
# job at least this long after it ended (domain/retention.py), so no job the
# look-up still consults is gone.
RECORDED_LOOKBACK_SECONDS = 3 * 86400.0


# A job not yet at the provider whose create may have made a batch: begun
# (``create_started_at``), no batch recorded. Found again by time and size
# only (Anthropic), two of a kind at once could each adopt the other's
# batch, so a kind has at most one (``UpstreamJobStore.start_create``).
UNRESOLVED_CREATE_STATES = frozenset({JobState.ASSEMBLING, JobState.UPLOADED})


def create_unresolved(job: UpstreamJob) -> bool:
    return (
        job.state in UNRESOLVED_CREATE_STATES
        and job.create_started_at is not None
        and job.upstream_batch_id is None
    )


def can_move_job(current: JobState, target: JobState) -> bool:
    return target in JOB_TRANSITIONS[current]


def job_sources(target: JobState) -> frozenset[JobState]:
    """The states a job may be in to move to ``target`` (a store's guard)."""
    return frozenset(state for state, to in JOB_TRANSITIONS.items() if target in to)


# The widths of the strings a job stores (store/tables.py upstream_jobs): a
# provider's ids and status words are not ours, so a longer one is refused
# here (ValueError, the driver's step fails with it) rather than by the
# database, which on PostgreSQL would refuse it with a less clear error.
MAX_KIND_CHARS = 32
MAX_ENDPOINT_CHARS = 64
MAX_UPSTREAM_ID_CHARS = 256
MAX_UPSTREAM_STATUS_CHARS = 32
_BOUNDED = {
    "kind": MAX_KIND_CHARS,
    "endpoint": MAX_ENDPOINT_CHARS,
    "upstream_file_id": MAX_UPSTREAM_ID_CHARS,
    "upstream_batch_id": MAX_UPSTREAM_ID_CHARS,
    "output_file_id": MAX_UPSTREAM_ID_CHARS,
    "error_file_id": MAX_UPSTREAM_ID_CHARS,
    "upstream_status": MAX_UPSTREAM_STATUS_CHARS,
}


def _check_bounds(record: object) -> None:
    for name, width in _BOUNDED.items():
        value = getattr(record, name, None)
        if isinstance(value, str) and len(value) > width:
            raise ValueError(
                f"upstream job {name} is {len(value)} characters long, over {width}: "
                f"{value[:40]!r}..."
            )


# How a row a job sent can end without the job serving it: the tenant
# cancelled it, or its window ran out. A result line that comes back for such
# a row (or for one that fell back to the real-time path) was paid for all
# the same: the operator's loss.
UNSERVED_STATES = frozenset({RequestState.CANCELED, RequestState.EXPIRED})
# How a row ends that a path served: it answered (its cost was incurred on
# that path, whether the answer was a result or an error).
SERVED_STATES = frozenset({RequestState.SUCCEEDED, RequestState.ERRORED})


class Path(enum.StrEnum):
    """Which path served a request of a provider-batch model (stored on the
    request as ``route``). A request of any other model has none."""

    BATCH = "batch"  # the provider's batch API, at its batch price
    REALTIME = "realtime"  # the deadline fallback, at the full list price


@dataclasses.dataclass(frozen=True)
class UpstreamJob:
    """One upstream job as the store keeps it."""

    id: str
    model: str
    kind: str  # the backend: "openai_batch" | "anthropic_batch"
    endpoint: str  # the upstream endpoint its lines go to
    state: JobState
    created_at: float
    request_count: int = 0
    bytes: int = 0
    # The earliest completion-window end among its rows' batches.
    deadline: float | None = None
    upstream_file_id: str | None = None
    upstream_batch_id: str | None = None
    # When the create call was first started: an Anthropic batch carries no
    # metadata, so after a crash the job is found by creation time and size.
    create_started_at: float | None = None
    submitted_at: float | None = None
    upstream_status: str | None = None  # the provider's own word, last seen
    end_status: EndStatus | None = None
    ended_at: float | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    downloaded_at: float | None = None
    cancel_requested_at: float | None = None
    next_poll_at: float = 0.0
    polls: int = 0
    lease_owner: str | None = None
    lease_expires_at: float | None = None
    last_error: str | None = None

    def __post_init__(self) -> None:
        _check_bounds(self)

    @property
    def done(self) -> bool:
        return self.state is JobState.ENDED and self.downloaded_at is not None


@dataclasses.dataclass(frozen=True)
class JobUpdate:
    """What one step of the driver changes on a job (None: unchanged).
    ``state`` must be a legal move from the job's current state."""

    state: JobState | None = None
    request_count: int | None = None
    bytes: int | None = None
    upstream_file_id: str | None = None
    upstream_batch_id: str | None = None
    create_started_at: float | None = None
    submitted_at: float | None = None
    upstream_status: str | None = None
    end_status: EndStatus | None = None
    ended_at: float | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    downloaded_at: float | None = None
    cancel_requested_at: float | None = None
    next_poll_at: float | None = None
    polls: int | None = None
    last_error: str | None = None

    def __post_init__(self) -> None:
        _check_bounds(self)

    def changes(self) -> dict[str, Any]:
        """The fields this step sets (those not None), by name."""
        return {
            field.name: value
            for field in dataclasses.fields(self)
            if (value := getattr(self, field.name)) is not None
        }


@dataclasses.dataclass(frozen=True)
class PendingWork:
    """The queued rows of one provider-batch model not yet in a job."""

    count: int
    bytes: int  # their stored params, a lower bound of their upstream lines
    oldest_queued_at: float | None
    earliest_deadline: float | None


@dataclasses.dataclass(frozen=True)
class Hold:
    """How many rows a job still holds, and the earliest completion-window
    end among them (None: it holds none): what a poll needs to know,
    counted by the store without reading the rows."""

    count: int
    earliest_deadline: float | None


@dataclasses.dataclass(frozen=True)
class HeldRequest:
    """A row a job holds: enough to render its upstream line again, and to
    decide whether it may go into another job."""

    id: int
    batch_id: str
    params: str
    attempt: int
    deadline: float  # its batch's completion-window end


@dataclasses.dataclass(frozen=True)
class Limits:
    """An upstream's limits and a model entry's pacing for its jobs."""

    max_requests: int
    max_bytes: int
    flush_after_seconds: float
    poll_seconds: float
    poll_max_seconds: float
    sync_fallback_before: float


OPENAI_MAX_REQUESTS = 50_000
OPENAI_MAX_BYTES = 200 * 1024 * 1024
ANTHROPIC_MAX_REQUESTS = 100_000
ANTHROPIC_MAX_BYTES = 256 * 1024 * 1024


def flush_at(pending: PendingWork, limits: Limits, turnaround: float) -> float | None:
    """When a job should be sent for ``pending`` (a unix time; None: nothing
    to send). At once when a full job is waiting; otherwise
    ``flush_after_seconds`` after the oldest row was queued, or earlier if the
    earliest deadline needs it: its rows must be back, after a job
    ``turnaround`` (measured; 0 when unknown), before the fallback point."""
    if pending.count == 0 or pending.oldest_queued_at is None:
        return None
    if pending.count >= limits.max_requests or pending.bytes >= limits.max_bytes:
        return 0.0
    due = pending.oldest_queued_at + limits.flush_after_seconds
    if pending.earliest_deadline is not None:
        latest = pending.earliest_deadline - limits.sync_fallback_before - turnaround
        due = min(due, latest)
    return due


# A model's turnaround is the median over this many of its newest ended jobs
# (``UpstreamJobStore.list_jobs``): recent enough to follow the provider's
# load, enough that one slow job does not set it.
TURNAROUND_JOBS = 20


def measured_turnaround(jobs: Iterable[UpstreamJob]) -> tuple[float, int]:
    """The median seconds from submit to end of the ``jobs`` the provider
    completed, and how many there were: (0.0, 0) when none (unknown, as
    ``flush_at`` takes it). A job cancelled (the deadline fallback, a
    tenant's cancel), refused or failed says nothing about how long the
    provider takes to do the work."""
    spans = [
        job.ended_at - job.submitted_at
        for job in jobs
        if job.end_status is EndStatus.COMPLETED
        and job.submitted_at is not None
        and job.ended_at is not None
    ]
    if not spans:
        return 0.0, 0
    return max(statistics.median(spans), 0.0), len(spans)


def needs_fallback(deadline: float, now: float, limits: Limits) -> bool:
    """A row whose batch has less than ``sync_fallback_before`` of its window
    left leaves its job for the real-time path (if the model has one)."""
    return deadline - now < limits.sync_fallback_before


def next_poll_delay(polls: int, limits: Limits) -> float:
    """Poll back-off: ``poll_seconds`` at first, growing by half each poll to
    ``poll_max_seconds`` (a job of hours is not polled every few seconds)."""
    return min(limits.poll_seconds * math.pow(1.5, max(polls, 0)), limits.poll_max_seconds)


def smaller_job(size: int) -> int:
    """The job size to try after the provider refused one of ``size`` rows as
    too large (``token_limit_exceeded``): half, at least one row."""
    return max(1, size // 2)


def upstream_custom_id(request_id: int) -> str:
    """The custom_id a row carries upstream: its request id, never the
    tenant's custom_id."""
    return str(request_id)


def request_id_from(custom_id: object) -> int | None:
    """The request id an upstream result line names; None for a line that is
    not one of ours (it is ignored)."""
    if not isinstance(custom_id, str) or not custom_id.isdigit() or len(custom_id) > 18:
        return None
    return int(custom_id)


def job_marker(job_id: str) -> str:
    """What names the job on every upstream object: an OpenAI file's name and
    its batch's ``metadata["batchgate_job"]``."""
    return f"batchgate-{job_id}.jsonl"
