"""Results so far: the finished rows of a batch, readable while it runs.

No major batch API serves results before the batch ends; batchgate does, on
its results routes, with a header saying whether the answer is complete. The
rows are the batch's terminal requests (optionally only some result types);
a request still queued or running is simply not there yet.
"""

from __future__ import annotations

from collections.abc import Iterable

from batchgate.domain import errors
from batchgate.domain.states import RESULT_STATES, RequestState

# Response header on every results route: "true" once the batch has ended
# (every request is in the answer), "false" while requests may still finish.
COMPLETE_HEADER = "X-Batchgate-Results-Complete"

_BY_NAME = {state.value: state for state in RESULT_STATES}


def parse_status_filter(values: Iterable[str]) -> tuple[RequestState, ...]:
    """``?status=succeeded&status=errored`` or ``?status=succeeded,errored``
    -> those states, in their canonical order; no value -> every terminal
    state. An unknown name is a 400 naming the parameter."""
    wanted: set[RequestState] = set()
    for value in values:
        for name in value.split(","):
            name = name.strip().lower()
            if not name:
                continue
            state = _BY_NAME.get(name)
            if state is None:
                raise errors.InvalidRequest(
                    f"status {name!r} is not a result type; use one or more of: "
                    + ", ".join(_BY_NAME),
                    param="status",
                    code="invalid_value",
                )
            wanted.add(state)
    if not wanted:
        return RESULT_STATES
    return tuple(state for state in RESULT_STATES if state in wanted)


def complete_header(ended: bool) -> dict[str, str]:
    return {COMPLETE_HEADER: "true" if ended else "false"}
