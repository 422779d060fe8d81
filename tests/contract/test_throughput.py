"""A model's recent work (dry-run ETAs), on every store."""

from __future__ import annotations

import time

from batchgate.domain import batch as bm
from batchgate.domain.states import RequestState
from batchgate.store import port
from tests.contract.builders import LEASE, make_batch


def test_recent_work_counts_succeeded_requests_of_the_model_in_the_window(
    store: port.JobStore,
) -> None:
    make_batch(store, 3, model="m")
    make_batch(store, 1, model="other")
    now = time.time()
    claimed = store.claim("m", 3, "w1", now - 10, LEASE)
    outcomes = [
        bm.Outcome(c.id, c.attempt, "w1", RequestState.SUCCEEDED, input_tokens=5, output_tokens=7)
        for c in claimed[:2]
    ]
    outcomes.append(bm.Outcome(claimed[2].id, claimed[2].attempt, "w1", RequestState.ERRORED))
    store.record_outcomes(outcomes, now)
    recent = store.recent_work("m", now - 60)
    assert (recent.requests, recent.tokens) == (2, 24)
    assert 9.0 <= recent.busy_seconds <= 11.0
    assert store.recent_work("m", now + 1).requests == 0
