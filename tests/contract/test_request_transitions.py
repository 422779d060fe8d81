"""The request state machine the store runs is domain/states.py's table.

Every store operation that can move a request is tried on a request in every
state; each move it makes must be an edge of ``REQUEST_TRANSITIONS``, and
every edge must be made by some operation. So the table is neither looser
nor stricter than the store's guards.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from batchgate.domain import batch as bm
from batchgate.domain import failures, retry, states
from batchgate.domain.states import RequestState
from batchgate.store import port
from tests.contract import transition_walk
from tests.contract.builders import LEASE, make_batch, new_batch


@dataclasses.dataclass
class Subject:
    """One request (of a one-request batch), with the lease it last had."""

    batch: bm.Batch
    claimed: bm.ClaimedRequest


Operation = Callable[[port.JobStore, Subject], object]
LATER = 10_000.0  # seconds past any lease or completion window
WORKER = "w1"


def _claim(store: port.JobStore, subject: Subject) -> object:
    return store.claim("m", 10, WORKER, time.time(), LEASE)


def _outcome(state: RequestState) -> Operation:
    def write(store: port.JobStore, subject: Subject) -> object:
        claimed = subject.claimed
        error = (
            None
            if state is RequestState.SUCCEEDED
            else failures.RequestError(failures.ErrorType.API, "boom")
        )
        outcome = bm.Outcome(claimed.id, claimed.attempt, WORKER, state, error=error)
        return store.record_outcomes([outcome], time.time())

    return write


def _lose_lease(max_attempts: int) -> Operation:
    def sweep(store: port.JobStore, subject: Subject) -> object:
        policy = retry.RetryPolicy(max_attempts=max_attempts, base_seconds=0.0, max_seconds=0.0)
        return store.requeue_lost_leases(time.time() + LATER, policy)

    return sweep


def _cancel(store: port.JobStore, subject: Subject) -> object:
    return store.cancel_batch(subject.batch.id, subject.batch.owner, time.time())


def _expire(store: port.JobStore, subject: Subject) -> object:
    return store.expire_batches(subject.batch.expires_at + LATER)


OPERATIONS: dict[str, Operation] = {
    "claim": _claim,
    "succeed": _outcome(RequestState.SUCCEEDED),
    "error": _outcome(RequestState.ERRORED),
    "retry": _outcome(RequestState.QUEUED),
    "lose the lease, attempts left": _lose_lease(max_attempts=5),
    "lose the lease, none left": _lose_lease(max_attempts=1),
    "cancel": _cancel,
    "expire": _expire,
}


def _in_state(store: port.JobStore, state: RequestState) -> Subject:
    """A request brought to ``state`` through the port. Each starts with a
    claim, so its lease (id, attempt) is known; a queued one is handed back."""
    batch = make_batch(store, 1)
    [claimed] = store.claim("m", 1, WORKER, time.time(), LEASE)
    subject = Subject(batch, claimed)
    recipes: dict[RequestState, list[Operation]] = {
        RequestState.QUEUED: [_outcome(RequestState.QUEUED)],
        RequestState.RUNNING: [],
        RequestState.SUCCEEDED: [_outcome(RequestState.SUCCEEDED)],
        RequestState.ERRORED: [_outcome(RequestState.ERRORED)],
        RequestState.CANCELED: [_cancel],
        RequestState.EXPIRED: [_expire],
    }
    for step in recipes[state]:
        step(store, subject)
    return subject


def _state(store: port.JobStore, subject: Subject) -> RequestState:
    [row] = store.iter_results(subject.batch.id)
    return row.state


def test_requests_are_stored_in_an_initial_state(store: port.JobStore) -> None:
    batch = new_batch(2)
    store.create_batch(
        batch,
        [
            bm.NewRequest(custom_id="ok", model="m", params="{}"),
            bm.NewRequest(
                custom_id="refused",
                model="m",
                params="{}",
                state=RequestState.ERRORED,
                error=failures.RequestError(failures.ErrorType.NOT_FOUND, "no such model"),
            ),
        ],
    )
    born = {row.state for row in store.iter_results(batch.id)}
    assert born == states.INITIAL_REQUEST_STATES


def test_the_store_moves_requests_exactly_along_the_table(store: port.JobStore) -> None:
    made = transition_walk.moves_made(
        store,
        RequestState,
        OPERATIONS,
        bring=_in_state,
        read=_state,
        allowed=states.can_move_request,
    )
    assert made == transition_walk.edges(states.REQUEST_TRANSITIONS)
