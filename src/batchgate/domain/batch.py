"""Batches and requests as the store hands them out."""

from __future__ import annotations

import dataclasses
from typing import Any

from batchgate.domain.counts import StateTally
from batchgate.domain.states import BatchStatus, Dialect, RequestState


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
    error: dict[str, Any] | None = None


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
    errors: list[dict[str, Any]] | None
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

    @property
    def ended_at(self) -> float | None:
        return self.completed_at or self.cancelled_at or self.expired_at or self.failed_at


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
    error: dict[str, Any] | None
    finished_at: float | None
