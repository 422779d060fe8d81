"""Retrying the failed rows of an ended batch: which rows go into the new
batch, and how it names its parent.

A retry re-runs the rows that ended ``errored`` or ``expired`` (a cancelled
row was the client's own choice), optionally only those whose failure is of
given types. An expired row has no error of its own; it is selected by the
type ``expired``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping

from batchgate.domain import failures
from batchgate.domain.states import RequestState

RETRIED_STATES = (RequestState.ERRORED, RequestState.EXPIRED)

# The filter value that selects rows the completion window ran out on.
EXPIRED = "expired"

# The failure types a filter may name: the error types requests end with
# (Anthropic's vocabulary, which OpenAI's result lines reuse), and ``expired``.
FAILURE_TYPES = (*(kind.value for kind in failures.ErrorType), EXPIRED)

# The metadata key that links a retry batch to the batch it retries.
PARENT_KEY = "retry_of"


@dataclasses.dataclass(frozen=True)
class StoredRequest:
    """One request of a batch as it was submitted, with how it ended:
    enough to submit it again unchanged."""

    custom_id: str
    model: str
    params: str
    state: RequestState
    error: failures.RequestError | None


def failure_type(row: StoredRequest) -> str:
    """The type a filter matches a failed row by: the recorded error's
    ``type`` for an errored row, ``expired`` for an expired one."""
    if row.state is RequestState.EXPIRED:
        return EXPIRED
    return (row.error or failures.UNKNOWN_REQUEST_ERROR).type.value


def selected(row: StoredRequest, types: Collection[str] | None) -> bool:
    """Whether a retry filtered on ``types`` (None: every failure) re-runs ``row``."""
    if row.state not in RETRIED_STATES:
        return False
    return types is None or failure_type(row) in types


def child_metadata(parent_id: str, metadata: Mapping[str, str] | None) -> dict[str, str]:
    """The parent's metadata, plus the link back to the parent."""
    return {**(metadata or {}), PARENT_KEY: parent_id}
