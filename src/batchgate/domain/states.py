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


# A request is stored queued, or already errored (a line the server refused
# at submit, e.g. for a model it does not serve).
INITIAL_REQUEST_STATES = frozenset({RequestState.QUEUED, RequestState.ERRORED})

# Which states each request state may move to: the single statement of the
# request state machine. A claim runs a queued request; its attempt ends it
# or (a retryable failure, a lost lease) queues it again; cancel and expiry
# end whatever is open. The store builds its guards from here
# (``request_sources``) and the contract suite (tests/contract/
# test_request_transitions.py) requires it to make exactly these moves.
REQUEST_TRANSITIONS: dict[RequestState, frozenset[RequestState]] = {
    RequestState.QUEUED: frozenset(
        {RequestState.RUNNING, RequestState.CANCELED, RequestState.EXPIRED}
    ),
    RequestState.RUNNING: frozenset(
        {
            RequestState.QUEUED,
            RequestState.SUCCEEDED,
            RequestState.ERRORED,
            RequestState.CANCELED,
            RequestState.EXPIRED,
        }
    ),
    RequestState.SUCCEEDED: frozenset(),
    RequestState.ERRORED: frozenset(),
    RequestState.CANCELED: frozenset(),
    RequestState.EXPIRED: frozenset(),
}

TERMINAL_REQUEST_STATES = frozenset(state for state, to in REQUEST_TRANSITIONS.items() if not to)
OPEN_REQUEST_STATES = frozenset(RequestState) - TERMINAL_REQUEST_STATES


def can_move_request(current: RequestState, target: RequestState) -> bool:
    return target in REQUEST_TRANSITIONS[current]


def request_sources(*targets: RequestState) -> frozenset[RequestState]:
    """The states a request may be in to move to every one of ``targets``
    (a store's guard for a write that may set any of them)."""
    return frozenset(
        state for state, to in REQUEST_TRANSITIONS.items() if all(t in to for t in targets)
    )


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
