"""Batches and requests as the store hands them out."""

from __future__ import annotations

import dataclasses
from typing import Any

from batchgate.domain import errors, upstream_jobs
from batchgate.domain.counts import StateTally
from batchgate.domain.failures import InputError, RequestError
from batchgate.domain.states import BatchStatus, Dialect, RequestState


def ids_taken(batch_id: str) -> errors.Conflict:
    """What every store raises for a batch id or a custom_id used twice."""
    return errors.Conflict(
        f"batch {batch_id!r} was not stored: its id or one of its custom_ids is already "
        "taken (custom_ids must be unique within a batch)"
    )


@dataclasses.dataclass(frozen=True)
class NewRequest:
    """One request of a batch being created; ``params`` is canonical chat JSON.

    A request may be born terminal (``state`` errored, with ``error``): a model
    name nobody serves is the request's failure, not the batch's.
    """

    custom_id: str
    model: str
    params: str
    state: RequestState = RequestState.QUEUED
    error: RequestError | None = None
    # Input tokens counted at submit; held against the key's quota while the
    # request is queued or running (backends/tokens.py).
    enqueued_tokens: int = 0


# The Batch field stamped with the time a batch entered each status.
STATUS_STAMPS: dict[BatchStatus, str] = {
    BatchStatus.IN_PROGRESS: "in_progress_at",
    BatchStatus.FAILED: "failed_at",
    BatchStatus.COMPLETED: "completed_at",
    BatchStatus.EXPIRED: "expired_at",
    BatchStatus.CANCELLING: "cancelling_at",
    BatchStatus.CANCELLED: "cancelled_at",
}


@dataclasses.dataclass(frozen=True)
class Batch:
    id: str
    owner: str
    dialect: Dialect
    endpoint: str
    input_file_id: str | None
    completion_window: str
    metadata: dict[str, str] | None
    status: BatchStatus
    errors: list[InputError] | None
    total: int
    created_at: float
    expires_at: float
    in_progress_at: float | None = None
    finalizing_at: float | None = None
    completed_at: float | None = None
    failed_at: float | None = None
    expired_at: float | None = None
    cancelling_at: float | None = None
    cancelled_at: float | None = None
    tally: StateTally = dataclasses.field(default_factory=lambda: StateTally(by_state={}))
    # Retention: seconds the results are kept once the batch has ended
    # (None: forever), and when they expire (set when it ends).
    results_ttl: int | None = None
    results_expire_at: float | None = None
    # The model its requests name; None when they name several.
    model: str | None = None
    # Every input error found; ``errors`` keeps the first MAX_KEPT_LINE_ERRORS.
    error_count: int = 0

    @property
    def ended_at(self) -> float | None:
        return self.completed_at or self.cancelled_at or self.expired_at or self.failed_at

    def results_expired(self, now: float) -> bool:
        """Whether the results are past their retention (gone, or about to
        be purged: either way no longer served)."""
        return self.results_expire_at is not None and self.results_expire_at <= now


@dataclasses.dataclass(frozen=True)
class ClaimedRequest:
    """A request leased to one worker for one attempt."""

    id: int
    batch_id: str
    custom_id: str
    model: str
    params: str
    attempt: int


@dataclasses.dataclass(frozen=True)
class ResultRow:
    """One request's outcome, as rendered into result files."""

    index: int
    custom_id: str
    state: RequestState
    result: dict[str, Any] | None
    error: RequestError | None
    finished_at: float | None
    # The canonical request JSON, read only when a rendering needs it
    # (``iter_results(..., with_params=True)``).
    params: str | None = None
    # A provider-batch model's row: the path it was sent down (an
    # upstream_jobs.Path value); None for every other model's.
    route: str | None = None

    @property
    def served_by(self) -> str | None:
        """The path that served the row, if one did: a row routed to the
        real-time path and then cancelled or expired was served by neither."""
        return self.route if self.state in upstream_jobs.SERVED_STATES else None


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What one attempt at one request came to, written fenced on the lease.

    ``state`` queued means "retry later, not before ``not_before``"; a
    terminal state ends the request.
    """

    request_id: int
    attempt: int
    worker_id: str
    state: RequestState
    result: dict[str, Any] | None = None
    error: RequestError | None = None
    input_tokens: int = 0  # including cached input
    output_tokens: int = 0  # including reasoning
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost: float = 0.0
    not_before: float = 0.0
    # A call made only to probe an upstream that looks down does not use up
    # one of the request's attempts.
    refund_attempt: bool = False
    # Which path served a provider-batch model's request (domain/
    # upstream_jobs.py ``Path``), stored on the row as ``route``; None
    # leaves the row's route as it is.
    route: str | None = None
