"""Request states, batch statuses, and which transitions are legal."""

from __future__ import annotations

import enum


class RequestState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    ERRORED = "errored"
    CANCELED = "canceled"
    EXPIRED = "expired"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_REQUEST_STATES


TERMINAL_REQUEST_STATES = frozenset(
    {RequestState.SUCCEEDED, RequestState.ERRORED, RequestState.CANCELED, RequestState.EXPIRED}
)
OPEN_REQUEST_STATES = frozenset({RequestState.QUEUED, RequestState.RUNNING})


class BatchStatus(enum.StrEnum):
    """OpenAI's batch statuses; the other dialects map onto them."""

    VALIDATING = "validating"
    FAILED = "failed"
    IN_PROGRESS = "in_progress"
    FINALIZING = "finalizing"
    COMPLETED = "completed"
    EXPIRED = "expired"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"

    @property
    def is_ended(self) -> bool:
        """Ended batches have their results ready and never change again."""
        return self in ENDED_BATCH_STATUSES


ENDED_BATCH_STATUSES = frozenset(
    {BatchStatus.COMPLETED, BatchStatus.EXPIRED, BatchStatus.CANCELLED, BatchStatus.FAILED}
)

# Which statuses each status may move to. The store enforces these in its
# WHERE clauses; this table is their single statement, and tests check it.
BATCH_TRANSITIONS: dict[BatchStatus, frozenset[BatchStatus]] = {
    BatchStatus.VALIDATING: frozenset({BatchStatus.IN_PROGRESS, BatchStatus.FAILED}),
    BatchStatus.IN_PROGRESS: frozenset(
        {BatchStatus.FINALIZING, BatchStatus.CANCELLING, BatchStatus.EXPIRED}
    ),
    BatchStatus.FINALIZING: frozenset({BatchStatus.COMPLETED}),
    BatchStatus.CANCELLING: frozenset({BatchStatus.CANCELLED}),
    BatchStatus.COMPLETED: frozenset(),
    BatchStatus.EXPIRED: frozenset(),
    BatchStatus.CANCELLED: frozenset(),
    BatchStatus.FAILED: frozenset(),
}

CANCELLABLE_BATCH_STATUSES = frozenset({BatchStatus.VALIDATING, BatchStatus.IN_PROGRESS})


def can_transition(current: BatchStatus, target: BatchStatus) -> bool:
    return target in BATCH_TRANSITIONS[current]


class Dialect(enum.StrEnum):
    """The front door a batch came in through; decides its result shape."""

    NATIVE = "native"
    OPENAI = "openai"
    ANTHROPIC = "anthropic"
