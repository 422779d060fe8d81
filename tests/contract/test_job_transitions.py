"""The upstream-job state machine the store runs is domain/upstream_jobs.py's
table: from every state, ``update_job`` makes exactly the moves
``JOB_TRANSITIONS`` allows and refuses the rest, and a job is born
assembling. So the table is neither looser nor stricter than the store."""

from __future__ import annotations

import dataclasses
import itertools
import time

from batchgate.domain import upstream_jobs as uj
from batchgate.store import port
from tests.contract import transition_walk
from tests.contract.builders import LEASE, make_batch, new_job

S = uj.JobState
# A legal way to bring a new job to each state.
_PATHS: dict[uj.JobState, list[uj.JobState]] = {
    S.ASSEMBLING: [],
    S.UPLOADED: [S.UPLOADED],
    S.SUBMITTED: [S.UPLOADED, S.SUBMITTED],
    S.ENDED: [S.SUBMITTED, S.ENDED],
}


def _job_in(store: port.JobStore, state: uj.JobState, now: float) -> uj.UpstreamJob:
    job = new_job(now=now)
    assert store.assemble_job(job, 1, now)
    for step in _PATHS[state]:
        assert store.update_job(job.id, "w1", uj.JobUpdate(state=step), now, LEASE)
    found = store.get_job(job.id)
    assert found is not None and found.state is state
    return found


def test_a_job_is_born_assembling(store: port.JobStore) -> None:
    make_batch(store, 1)
    now = time.time()
    job = dataclasses.replace(new_job(now=now), state=S.SUBMITTED)
    assert store.assemble_job(job, 1, now)
    stored = store.get_job(job.id)
    assert stored is not None and stored.state is S.ASSEMBLING


def test_update_job_makes_exactly_the_moves_of_the_table(store: port.JobStore) -> None:
    pairs = list(itertools.product(S, S))
    make_batch(store, len(pairs))
    now = time.time()
    made: set[tuple[uj.JobState, uj.JobState]] = set()
    for source, target in pairs:
        job = _job_in(store, source, now)
        moved = store.update_job(job.id, "w1", uj.JobUpdate(state=target), now, LEASE)
        after = store.get_job(job.id)
        assert after is not None
        if moved is None:
            assert after.state is source, (source, target)
        else:
            assert after.state is target
            made.add((source, target))
    assert made == transition_walk.edges(uj.JOB_TRANSITIONS)
