"""A model's recent work (dry-run ETAs), on every store."""

from __future__ import annotations

import time

import pytest

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


def test_recent_work_is_busy_only_while_a_batch_ran_and_times_each_call(
    store: port.JobStore,
) -> None:
    make_batch(store, 1, model="m")
    now = time.time()

    def run(start: float, end: float, generating: float | None = None) -> None:
        (claimed,) = store.claim("m", 1, "w1", start, LEASE)
        if generating is not None:
            store.mark_generating("w1", [claimed.id], generating)
        ok = bm.Outcome(claimed.id, claimed.attempt, "w1", RequestState.SUCCEEDED, output_tokens=3)
        store.record_outcomes([ok], end)

    run(now - 100, now - 90)  # an hour's idle gap after it must not count as busy
    make_batch(store, 1, model="m")
    run(now - 10, now, generating=now - 4)  # claimed 6 s before its call started
    recent = store.recent_work("m", now - 200)
    # The first batch's 10 s, and the second's from its call's start: 4 s.
    assert recent.busy_seconds == pytest.approx(10 + 4, abs=0.5)
    assert recent.request_seconds == pytest.approx(10 + 4, abs=0.5)
    assert (recent.requests, recent.output_tokens) == (2, 6)
