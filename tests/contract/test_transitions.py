"""The batch state machine the store runs is domain/states.py's table.

Every store operation that can move a batch is tried on a batch in every
status; each move it makes must be an edge of the table, and every edge of
the table must be made by some operation. So the table is neither looser nor
stricter than the store.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from batchgate.domain import batch as bm
from batchgate.domain import failures, states
from batchgate.domain.states import BatchStatus
from batchgate.store import port
from tests.contract import transition_walk
from tests.contract.builders import LEASE, make_batch, new_batch, succeed

Operation = Callable[[port.JobStore, bm.Batch], object]
LATER = 10_000.0  # seconds past the batch's completion window


def _cancel(store: port.JobStore, batch: bm.Batch) -> object:
    return store.cancel_batch(batch.id, batch.owner, time.time())


def _expire(store: port.JobStore, batch: bm.Batch) -> object:
    return store.expire_batches(batch.expires_at + LATER)


def _finalize(store: port.JobStore, batch: bm.Batch) -> object:
    return store.finalize_batches(time.time(), [batch.id])


def _finish_requests(store: port.JobStore, batch: bm.Batch) -> object:
    for claimed in store.claim("m", 10, "w1", time.time(), LEASE):
        succeed(store, claimed)
    return store.finalize_batches(time.time(), [batch.id])


OPERATIONS: dict[str, Operation] = {
    "cancel": _cancel,
    "expire": _expire,
    "finalize": _finalize,
    "finish requests": _finish_requests,
}


def _in_status(store: port.JobStore, status: BatchStatus) -> bm.Batch:
    """A batch (of one request, model "m") brought to ``status`` through the port."""
    if status is BatchStatus.FAILED:
        failed = new_batch(0)
        store.fail_batch(failed, [failures.InputError(1, "invalid_json_line", "bad")], time.time())
        return failed
    batch = make_batch(store, 1)
    recipes: dict[BatchStatus, list[Operation]] = {
        BatchStatus.IN_PROGRESS: [],
        BatchStatus.CANCELLING: [_cancel],
        BatchStatus.CANCELLED: [_cancel, _finalize],
        BatchStatus.COMPLETED: [_finish_requests],
        BatchStatus.EXPIRED: [_expire],
    }
    for step in recipes[status]:
        step(store, batch)
    return batch


def _status(store: port.JobStore, batch: bm.Batch) -> BatchStatus:
    found = store.get_batch(batch.id)
    assert found is not None
    return found.status


def test_batches_are_stored_in_an_initial_status(store: port.JobStore) -> None:
    born = {
        _status(store, _in_status(store, s)) for s in (BatchStatus.IN_PROGRESS, BatchStatus.FAILED)
    }
    assert born == states.INITIAL_BATCH_STATUSES


def test_the_store_moves_batches_exactly_along_the_table(store: port.JobStore) -> None:
    made = transition_walk.moves_made(
        store,
        BatchStatus,
        OPERATIONS,
        bring=_in_status,
        read=_status,
        allowed=states.can_transition,
    )
    assert made == transition_walk.edges(states.BATCH_TRANSITIONS)
