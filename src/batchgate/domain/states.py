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

# Terminal states in the order result filters list them (Anthropic's names).
RESULT_STATES = (
    RequestState.SUCCEEDED,
    RequestState.ERRORED,
    RequestState.CANCELED,
    RequestState.EXPIRED,
)


class BatchStatus(enum.StrEnum):
    """The batch statuses batchgate enters: OpenAI's, less ``validating`` and
    ``finalizing`` (input is validated before a batch is stored, and result
    files are rendered on demand, so neither phase exists here). The other
    dialects map onto these."""

    FAILED = "failed"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    EXPIRED = "expired"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"

    @property
    def is_ended(self) -> bool:
        """Ended batches have their results ready and never change again."""
        return not BATCH_TRANSITIONS[self]


# A batch is stored in one of these: in progress with its requests, or
# failed (its input had bad lines) with none.
INITIAL_BATCH_STATUSES = frozenset({BatchStatus.IN_PROGRESS, BatchStatus.FAILED})

# Which statuses each status may move to: the single statement of the batch
# state machine. The store takes its guards from here (``sources``), and the
# contract suite drives every store through every edge.
BATCH_TRANSITIONS: dict[BatchStatus, frozenset[BatchStatus]] = {
    BatchStatus.IN_PROGRESS: frozenset(
        {BatchStatus.COMPLETED, BatchStatus.CANCELLING, BatchStatus.EXPIRED}
    ),
    BatchStatus.CANCELLING: frozenset({BatchStatus.CANCELLED}),
    BatchStatus.COMPLETED: frozenset(),
    BatchStatus.EXPIRED: frozenset(),
    BatchStatus.CANCELLED: frozenset(),
    BatchStatus.FAILED: frozenset(),
}

ENDED_BATCH_STATUSES = frozenset(status for status, to in BATCH_TRANSITIONS.items() if not to)


def can_transition(current: BatchStatus, target: BatchStatus) -> bool:
    return target in BATCH_TRANSITIONS[current]


def sources(target: BatchStatus) -> frozenset[BatchStatus]:
    """The statuses a batch may be in to move to ``target`` (a store's guard)."""
    return frozenset(status for status, to in BATCH_TRANSITIONS.items() if target in to)


def _edges(pairs: dict[BatchStatus, BatchStatus]) -> dict[BatchStatus, BatchStatus]:
    for current, target in pairs.items():
        if not can_transition(current, target):
            raise ValueError(f"{current} -> {target} is not a batch transition")
    return pairs


# What a batch becomes once none of its requests is open any more.
SETTLED_BATCH_STATUS: dict[BatchStatus, BatchStatus] = _edges(
    {
        BatchStatus.IN_PROGRESS: BatchStatus.COMPLETED,
        BatchStatus.CANCELLING: BatchStatus.CANCELLED,
    }
)


class Dialect(enum.StrEnum):
    """The front door a batch came in through; decides its result shape."""

    NATIVE = "native"
    OPENAI = "openai"
    ANTHROPIC = "anthropic"


class RequestKind(enum.StrEnum):
    """What a request asks a model for; a backend declares the kinds it serves."""

    CHAT = "chat"
    EMBEDDINGS = "embeddings"
