"""The upstream-job contract (port.UpstreamJobStore): a provider-batch model's
queued rows are packed into jobs earliest deadline first, whichever tenant
they belong to; a job holds its rows like a worker (running, leased to the
job, written fenced on it); jobs are leased to one worker at a time and move
only along domain/upstream_jobs.py's table."""

from __future__ import annotations

import threading
import time

import pytest

from batchgate.domain import batch as bm
from batchgate.domain import ids, retry
from batchgate.domain import upstream_jobs as uj
from batchgate.domain.states import RequestState
from batchgate.store import port
from tests.contract.builders import KIND, LEASE, make_batch, new_job, taken_concurrently


def assemble(
    store: port.JobStore, n: int = 100, model: str = "m", now: float | None = None
) -> tuple[uj.UpstreamJob, list[uj.HeldRequest]]:
    job = new_job(model, now=now)
    held = store.assemble_job(job, n, time.time() if now is None else now)
    return job, held


def outcome(job_id: str, held: uj.HeldRequest, route: str | None = uj.Path.BATCH) -> bm.Outcome:
    return bm.Outcome(
        held.id, held.attempt, job_id, RequestState.SUCCEEDED, result={"ok": held.id}, route=route
    )


def states_of(store: port.JobStore, batch: bm.Batch) -> list[RequestState]:
    return [row.state for row in store.iter_results(batch.id)]


def route_of(store: port.JobStore, request_id: int) -> str | None:
    """The stored route of a row by its id, whatever its state (the port
    reads it back only with a batch's results, by index), from each store's
    own rows."""
    if hasattr(store, "_requests"):
        route: str | None = store._requests[request_id].route
        return route
    import sqlalchemy as sa

    from batchgate.store import tables

    requests = tables.requests
    with store.engine.connect() as conn:  # type: ignore[attr-defined]
        query = sa.select(requests.c.route).where(requests.c.id == request_id)
        value: str | None = conn.execute(query).scalar_one()
    return value


# -- assembling ---------------------------------------------------------------
def test_assemble_takes_earliest_deadline_first_across_tenants(store: port.JobStore) -> None:
    late = make_batch(store, 3, owner="key_a", window=7200.0)
    soon = make_batch(store, 2, owner="key_b", window=3600.0)
    job, held = assemble(store, 3)
    assert sorted(h.batch_id for h in held) == sorted([late.id, soon.id, soon.id])
    assert [h.id for h in held] == sorted(h.id for h in held)
    assert {h.attempt for h in held} == {1}
    assert {h.deadline for h in held if h.batch_id == soon.id} == {soon.expires_at}
    first_of_late = min(r.id for r in store.job_requests(job.id) if r.batch_id == late.id)
    assert first_of_late == min(h.id for h in held if h.batch_id == late.id)
    stored = store.get_job(job.id)
    assert stored is not None
    assert (stored.state, stored.request_count, stored.deadline) == (
        uj.JobState.ASSEMBLING,
        3,
        soon.expires_at,
    )
    assert (stored.lease_owner, stored.bytes) == ("w1", 3 * len("{}"))
    assert store.job_requests(job.id) == held
    assert states_of(store, soon) == [RequestState.RUNNING] * 2
    assert states_of(store, late) == [RequestState.RUNNING] + [RequestState.QUEUED] * 2


def test_assemble_with_no_pending_rows_stores_nothing(store: port.JobStore) -> None:
    make_batch(store, 2, model="other")
    job, held = assemble(store)
    assert held == []
    assert store.get_job(job.id) is None
    assert store.list_jobs() == []


def test_pending_work_counts_what_a_job_may_take(store: port.JobStore) -> None:
    now = time.time()
    first = make_batch(store, 2, created_at=now - 50, window=3600.0)
    make_batch(store, 3, created_at=now - 10, window=600.0)
    cancelled = make_batch(store, 4, owner="key_b")
    store.cancel_batch(cancelled.id, "key_b", now)
    make_batch(store, 5, model="other")
    pending = store.pending_upstream_work("m", now)
    assert (pending.count, pending.bytes) == (5, 5 * len("{}"))
    assert pending.oldest_queued_at == pytest.approx(first.created_at)
    assert pending.earliest_deadline == pytest.approx(now - 10 + 600.0)
    job, held = assemble(store, 2, now=now)
    store.release_job_requests(job.id, [held[0].id], now, route=uj.Path.REALTIME)
    assert store.pending_upstream_work("m", now).count == 3
    empty = store.pending_upstream_work("nobody", now)
    assert empty == uj.PendingWork(0, 0, None, None)


def test_concurrent_assemblies_never_share_a_row(store: port.JobStore) -> None:
    make_batch(store, 120, owner="key_a")
    make_batch(store, 80, owner="key_b", window=600.0)
    seen = taken_concurrently(lambda _worker: (h.id for h in assemble(store, 7)[1]))
    assert len(seen) == 200
    assert len(set(seen)) == 200


# -- a job holds its rows -----------------------------------------------------
def test_a_jobs_rows_cannot_be_claimed_by_workers(store: port.JobStore) -> None:
    make_batch(store, 3)
    job, held = assemble(store)
    now = time.time()
    assert store.claim("m", 10, "w1", now, LEASE) == []
    assert store.claim("m", 10, "w1", now, LEASE, route=uj.Path.REALTIME) == []
    assert assemble(store)[1] == []
    assert store.held_request_ids(job.id) == {h.id for h in held}


def test_the_job_writes_outcomes_fenced_on_itself(store: port.JobStore) -> None:
    batch = make_batch(store, 2)
    job, held = assemble(store)
    now = time.time()
    assert store.record_outcomes([outcome("w1", held[0])], now) == [False]
    assert store.record_outcomes([outcome(job.id, held[0])], now) == [True]
    assert store.record_outcomes([outcome(job.id, held[0])], now) == [False]
    assert route_of(store, held[0].id) == uj.Path.BATCH
    assert states_of(store, batch) == [RequestState.SUCCEEDED, RequestState.RUNNING]
    assert store.job_requests(job.id) == [held[1]]


def test_job_requests_by_chunk_and_without_params(store: port.JobStore) -> None:
    make_batch(store, 3)
    job, held = assemble(store)
    first, second, third = held
    assert store.job_requests(job.id, [third.id, first.id, 999_999]) == [first, third]
    assert store.job_requests(job.id, []) == []
    light = store.job_requests(job.id, with_params=False)
    assert [(h.id, h.params, h.deadline, h.attempt) for h in light] == [
        (h.id, "", h.deadline, h.attempt) for h in held
    ]
    assert store.record_outcomes([outcome(job.id, second)], time.time()) == [True]
    assert store.job_requests(job.id, [second.id]) == []


def test_dropped_params_are_of_rows_the_job_sent_and_did_not_serve(
    store: port.JobStore,
) -> None:
    kept = make_batch(store, 2, owner="key_a")
    gone = make_batch(store, 1, owner="key_b")
    job, held = assemble(store)
    served, fell_back, cancelled = sorted(held, key=lambda h: (h.batch_id != kept.id, h.id))
    now = time.time()
    assert store.record_outcomes([outcome(job.id, served)], now) == [True]
    store.release_job_requests(job.id, [fell_back.id], now, route=uj.Path.REALTIME)
    store.cancel_batch(gone.id, gone.owner, now)
    every = [served.id, fell_back.id, cancelled.id]
    assert store.dropped_params(job.id, every) == {fell_back.id: "{}", cancelled.id: "{}"}
    assert store.dropped_params("ujob_other", every) == {}


def test_job_hold_counts_held_rows_and_their_earliest_deadline(store: port.JobStore) -> None:
    later = make_batch(store, 2, owner="key_a", window=7200.0)
    soon = make_batch(store, 1, owner="key_b", window=600.0)
    job, held = assemble(store)
    assert store.job_hold(job.id) == uj.Hold(3, soon.expires_at)
    # The soonest row leaves (written back): the hold's deadline moves on.
    (soon_row,) = (h for h in held if h.batch_id == soon.id)
    assert store.record_outcomes([outcome(job.id, soon_row)], time.time()) == [True]
    assert store.job_hold(job.id) == uj.Hold(2, later.expires_at)
    store.cancel_batch(later.id, later.owner, time.time())
    assert store.job_hold(job.id) == uj.Hold(0, None)
    assert store.job_hold("ujob_other") == uj.Hold(0, None)


@pytest.mark.parametrize("how", ["cancel", "expire"])
def test_cancel_and_expiry_end_job_held_rows(store: port.JobStore, how: str) -> None:
    batch = make_batch(store, 2)
    job, held = assemble(store)
    if how == "cancel":
        store.cancel_batch(batch.id, batch.owner, time.time())
        ended = RequestState.CANCELED
    else:
        store.expire_batches(batch.expires_at + 1)
        ended = RequestState.EXPIRED
    assert states_of(store, batch) == [ended, ended]
    assert store.job_requests(job.id) == []
    assert store.record_outcomes([outcome(job.id, h) for h in held], time.time()) == [False] * 2
    assert states_of(store, batch) == [ended, ended]
    assert store.fallback_due("m", batch.expires_at + 10_000) == {}


def test_release_refunds_the_attempt_and_sets_the_route(store: port.JobStore) -> None:
    batch = make_batch(store, 3)
    job, held = assemble(store)
    now = time.time()
    realtime, again, kept = (h.id for h in held)
    assert store.release_job_requests(job.id, [realtime], now, route=uj.Path.REALTIME) == 1
    assert store.release_job_requests(job.id, [again, 999_999], now) == 1
    assert store.release_job_requests(job.id, [realtime], now) == 0  # no longer held
    assert store.record_outcomes([outcome(job.id, held[0])], now) == [False]
    assert [h.id for h in store.job_requests(job.id)] == [kept]
    assert route_of(store, realtime) == uj.Path.REALTIME
    (claimed,) = store.claim("m", 10, "w1", now, LEASE, route=uj.Path.REALTIME)
    assert (claimed.id, claimed.attempt) == (realtime, 1)
    assert store.claim("m", 10, "w1", now, LEASE, route=uj.Path.REALTIME) == []
    second, (taken,) = assemble(store)
    assert (taken.id, taken.attempt) == (again, 1)
    assert states_of(store, batch) == [RequestState.RUNNING] * 3
    assert store.record_outcomes([outcome(second.id, taken)], now) == [True]


def test_realtime_outcomes_keep_or_set_the_route(store: port.JobStore) -> None:
    make_batch(store, 2)
    job, held = assemble(store)
    now = time.time()
    store.release_job_requests(job.id, [h.id for h in held], now, route=uj.Path.REALTIME)
    first, second = store.claim("m", 10, "w1", now, LEASE, route=uj.Path.REALTIME)
    retried = bm.Outcome(first.id, first.attempt, "w1", RequestState.QUEUED, not_before=now)
    written = bm.Outcome(
        second.id, second.attempt, "w1", RequestState.SUCCEEDED, route=uj.Path.REALTIME
    )
    assert store.record_outcomes([retried, written], now) == [True, True]
    assert route_of(store, first.id) == uj.Path.REALTIME
    assert route_of(store, second.id) == uj.Path.REALTIME
    assert [c.id for c in store.claim("m", 10, "w1", now, LEASE, route="realtime")] == [first.id]


def test_claim_on_a_route_takes_only_rows_routed_there(store: port.JobStore) -> None:
    make_batch(store, 3)
    job, held = assemble(store, 1)
    now = time.time()
    store.release_job_requests(job.id, [held[0].id], now, route=uj.Path.REALTIME)
    plain = store.claim("m", 10, "w1", now, LEASE)
    assert held[0].id not in {c.id for c in plain}
    assert len(plain) == 2
    assert [c.id for c in store.claim("m", 10, "w2", now, LEASE, route="realtime")] == [held[0].id]


def test_expire_job_requests_ends_only_held_rows(store: port.JobStore) -> None:
    batch = make_batch(store, 3)
    job, held = assemble(store)
    now = time.time()
    assert store.record_outcomes([outcome(job.id, held[0])], now) == [True]
    ids_ = [h.id for h in held[:2]]
    assert store.expire_job_requests(job.id, ids_, now) == 1
    assert store.expire_job_requests("ujob_other", [held[2].id], now) == 0
    assert states_of(store, batch) == [
        RequestState.SUCCEEDED,
        RequestState.EXPIRED,
        RequestState.RUNNING,
    ]


def test_a_lost_job_lease_on_rows_is_requeued_for_a_new_job(store: port.JobStore) -> None:
    make_batch(store, 1)
    job, (held,) = assemble(store)
    later = time.time() + 27 * 3600
    assert store.requeue_lost_leases(later, retry.RetryPolicy(max_attempts=5)) == 1
    assert store.pending_upstream_work("m", later + 3600).count == 1
    assert store.record_outcomes([outcome(job.id, held)], later) == [False]


def test_a_rerun_of_failed_rows_goes_to_a_job_again(store: port.JobStore) -> None:
    batch = make_batch(store, 2)
    job, held = assemble(store)
    now = time.time()
    store.release_job_requests(job.id, [held[0].id], now, route=uj.Path.REALTIME)
    (claimed,) = store.claim("m", 1, "w1", now, LEASE, route="realtime")
    failed = bm.Outcome(
        claimed.id, claimed.attempt, "w1", RequestState.ERRORED, route=uj.Path.REALTIME
    )
    store.record_outcomes([failed], now)
    store.expire_job_requests(job.id, [held[1].id], now)
    store.finalize_batches(now, [batch.id])
    rows = list(store.iter_requests(batch.id, [RequestState.ERRORED, RequestState.EXPIRED]))
    child = make_batch(store, 0)
    store.create_batch(
        bm.Batch(**{**child.__dict__, "id": ids.new_batch_id(child.dialect), "total": 2}),
        [bm.NewRequest(custom_id=r.custom_id, model=r.model, params=r.params) for r in rows],
    )
    assert store.pending_upstream_work("m", now).count == 2
    _, again = assemble(store)
    assert len(again) == 2
    assert [j.id for j in store.jobs_for_batch(batch.id)] == [job.id]
    assert route_of(store, again[0].id) is None


# -- jobs leased to workers ---------------------------------------------------
def test_claim_due_jobs_leases_steals_after_expiry_and_fences(store: port.JobStore) -> None:
    make_batch(store, 2)
    now = time.time()
    job, _ = assemble(store, now=now)
    assert store.claim_due_jobs(["m"], "w2", now, LEASE, 10) == []  # w1 holds it
    (mine,) = store.claim_due_jobs(["m"], "w1", now, LEASE, 10)
    assert (mine.id, mine.lease_owner) == (job.id, "w1")
    assert store.claim_due_jobs(["other"], "w1", now, LEASE, 10) == []
    later = now + LEASE + 1
    (stolen,) = store.claim_due_jobs(["m"], "w2", later, LEASE, 10)
    assert (stolen.lease_owner, stolen.lease_expires_at) == ("w2", later + LEASE)
    update = uj.JobUpdate(state=uj.JobState.UPLOADED, upstream_file_id="file-1")
    assert store.update_job(job.id, "w1", update, later, LEASE) is None
    moved = store.update_job(job.id, "w2", update, later, LEASE)
    assert moved is not None
    assert (moved.state, moved.upstream_file_id) == (uj.JobState.UPLOADED, "file-1")
    store.release_job_lease(job.id, "w1")  # not its lease: nothing happens
    assert store.claim_due_jobs(["m"], "w3", later, LEASE, 10) == []
    store.release_job_lease(job.id, "w2")
    assert [j.lease_owner for j in store.claim_due_jobs(["m"], "w3", later, LEASE, 10)] == ["w3"]


def test_only_due_unfinished_jobs_are_claimed_oldest_first(store: port.JobStore) -> None:
    make_batch(store, 3)
    now = time.time()
    jobs = [assemble(store, 1, now=now + i)[0] for i in range(3)]
    for job in jobs:
        store.release_job_lease(job.id, "w1")
    waiting, done, due = jobs
    store.claim_due_jobs(["m"], "w1", now + 5, LEASE, 10)
    store.update_job(waiting.id, "w1", uj.JobUpdate(next_poll_at=now + 100), now + 5, LEASE)
    ended = uj.JobUpdate(state=uj.JobState.ENDED, end_status=uj.EndStatus.COMPLETED)
    store.update_job(done.id, "w1", ended, now + 5, LEASE)
    for job in jobs:
        store.release_job_lease(job.id, "w1")
    # Ended but not downloaded is still due; downloaded, it is done.
    assert [j.id for j in store.claim_due_jobs(["m"], "w2", now + 5, LEASE, 10)] == [
        done.id,
        due.id,
    ]
    store.update_job(done.id, "w2", uj.JobUpdate(downloaded_at=now + 6), now + 6, LEASE)
    finished = store.get_job(done.id)
    assert finished is not None and finished.done
    assert [j.id for j in store.claim_due_jobs(["m"], "w2", now + 200, LEASE, 1)] == [waiting.id]
    assert [j.id for j in store.claim_due_jobs(["m"], "w2", now + 200, LEASE, 10)] == [
        waiting.id,
        due.id,
    ]


def test_update_job_applies_a_step_and_extends_the_lease(store: port.JobStore) -> None:
    make_batch(store, 1)
    now = time.time()
    job, _ = assemble(store, now=now)
    update = uj.JobUpdate(
        state=uj.JobState.SUBMITTED,
        upstream_batch_id="batch_up",
        submitted_at=now + 1,
        upstream_status="validating",
        next_poll_at=now + 30,
        polls=1,
        create_started_at=now,
        last_error="none yet",
    )
    stepped = store.update_job(job.id, "w1", update, now + 2, 90.0)
    assert stepped is not None
    assert stepped == store.get_job(job.id)
    assert (stepped.upstream_batch_id, stepped.upstream_status, stepped.polls) == (
        "batch_up",
        "validating",
        1,
    )
    assert (stepped.submitted_at, stepped.next_poll_at, stepped.lease_expires_at) == (
        now + 1,
        now + 30,
        now + 92.0,
    )
    assert (stepped.create_started_at, stepped.last_error) == (now, "none yet")
    assert stepped.request_count == 1 and stepped.upstream_file_id is None


def test_update_job_rejects_an_illegal_move(store: port.JobStore) -> None:
    make_batch(store, 1)
    now = time.time()
    job, _ = assemble(store, now=now)
    back = uj.JobUpdate(state=uj.JobState.ASSEMBLING)
    assert store.update_job(job.id, "w1", back, now, LEASE) is None
    store.update_job(job.id, "w1", uj.JobUpdate(state=uj.JobState.SUBMITTED), now, LEASE)
    assert (
        store.update_job(job.id, "w1", uj.JobUpdate(state=uj.JobState.UPLOADED), now, LEASE) is None
    )
    unchanged = store.get_job(job.id)
    assert unchanged is not None and unchanged.state is uj.JobState.SUBMITTED
    assert store.update_job("ujob_missing", "w1", uj.JobUpdate(polls=1), now, LEASE) is None


def test_a_provider_value_too_long_for_its_column_is_refused() -> None:
    with pytest.raises(ValueError, match="upstream_batch_id"):
        uj.JobUpdate(upstream_batch_id="b" * (uj.MAX_UPSTREAM_ID_CHARS + 1))
    with pytest.raises(ValueError, match="upstream_status"):
        uj.JobUpdate(upstream_status="s" * (uj.MAX_UPSTREAM_STATUS_CHARS + 1))


# -- reading jobs -------------------------------------------------------------
def test_fallback_due_names_rows_of_open_jobs_whose_window_runs_short(
    store: port.JobStore,
) -> None:
    now = time.time()
    short = make_batch(store, 2, owner="key_a", window=3600.0, created_at=now)
    make_batch(store, 1, owner="key_b", window=5 * 3600.0, created_at=now)
    make_batch(store, 1, owner="key_b", model="other", window=600.0, created_at=now)
    job, held = assemble(store, now=now)
    assemble(store, model="other", now=now)
    assert store.fallback_due("m", now + 2 * 3600) == {
        job.id: [h.id for h in held if h.batch_id == short.id]
    }
    assert store.fallback_due("m", now + 6 * 3600) == {job.id: [h.id for h in held]}
    assert store.fallback_due("m", now) == {}
    store.update_job(
        job.id, "w1", uj.JobUpdate(state=uj.JobState.ENDED), now, LEASE
    )  # an ended job's rows come back with its results
    assert store.fallback_due("m", now + 6 * 3600) == {}


def test_jobs_for_batch_lists_the_jobs_that_held_its_rows(store: port.JobStore) -> None:
    now = time.time()
    spanning = make_batch(store, 3, owner="key_a", window=600.0, created_at=now)
    other = make_batch(store, 1, owner="key_b", window=7200.0, created_at=now)
    first, _ = assemble(store, 2, now=now)
    second, held = assemble(store, 2, now=now + 1)
    assert sorted(h.batch_id for h in held) == sorted([spanning.id, other.id])
    store.record_outcomes([outcome(second.id, h) for h in held], now + 2)
    assert [j.id for j in store.jobs_for_batch(spanning.id)] == [first.id, second.id]
    assert [j.id for j in store.jobs_for_batch(other.id)] == [second.id]
    assert store.jobs_for_batch("batch_none") == []


def test_list_jobs_newest_first_by_model_state_and_end(store: port.JobStore) -> None:
    make_batch(store, 2)
    make_batch(store, 1, model="other")
    now = time.time()
    old, _ = assemble(store, 1, now=now)
    new, _ = assemble(store, 1, now=now + 1)
    other, _ = assemble(store, 1, model="other", now=now + 2)
    ended = uj.JobUpdate(state=uj.JobState.ENDED, ended_at=now + 5)
    store.update_job(old.id, "w1", ended, now + 5, LEASE)
    assert [j.id for j in store.list_jobs()] == [other.id, new.id, old.id]
    assert [j.id for j in store.list_jobs(limit=1)] == [other.id]
    assert [j.id for j in store.list_jobs(model="m")] == [new.id, old.id]
    assert [j.id for j in store.list_jobs(states=[uj.JobState.ENDED])] == [old.id]
    assert [j.id for j in store.list_jobs(ended_since=now + 4)] == [old.id]
    assert store.list_jobs(ended_since=now + 6) == []


def test_recorded_upstream_batch_ids_by_kind_and_age(store: port.JobStore) -> None:
    make_batch(store, 3)
    now = time.time()
    jobs: list[uj.UpstreamJob] = []
    for offset, kind in ((0.0, KIND), (10.0, KIND), (10.0, "anthropic_batch")):
        job = new_job(now=now + offset, kind=kind)
        store.assemble_job(job, 1, now + offset)
        jobs.append(job)
    for index, job in enumerate(jobs[:2] + jobs[2:]):
        step = uj.JobUpdate(state=uj.JobState.SUBMITTED, upstream_batch_id=f"up_{index}")
        store.update_job(job.id, "w1", step, now + 10, LEASE)
    assert store.recorded_upstream_batch_ids(KIND, now - 1) == {"up_0", "up_1"}
    assert store.recorded_upstream_batch_ids(KIND, now + 5) == {"up_1"}
    assert store.recorded_upstream_batch_ids("anthropic_batch", now) == {"up_2"}


def test_one_unresolved_create_per_kind(store: port.JobStore) -> None:
    """A create begun with no batch recorded blocks the other jobs of its
    kind from beginning theirs until its batch is recorded or it ends."""
    make_batch(store, 5)
    now = time.time()
    first, second, third = (new_job(now=now, kind="anthropic_batch") for _ in range(3))
    other = new_job(now=now)
    for job in (first, second, third, other):
        store.assemble_job(job, 1, now)
    started = store.start_create(first.id, "w1", now + 1, 90.0)
    assert started is not None and started == store.get_job(first.id)
    assert (started.create_started_at, started.lease_expires_at) == (now + 1, now + 91)
    assert store.start_create(second.id, "w1", now + 2, LEASE) is None
    assert store.start_create(first.id, "w2", now + 2, LEASE) is None  # not w2's job
    # The unresolved one itself begins again (a create repeated after a crash).
    again = store.start_create(first.id, "w1", now + 3, LEASE)
    assert again is not None and again.create_started_at == now + 3
    assert store.start_create(other.id, "w1", now + 3, LEASE) is not None  # another kind
    recorded = uj.JobUpdate(state=uj.JobState.SUBMITTED, upstream_batch_id="msgbatch_1")
    store.update_job(first.id, "w1", recorded, now + 4, LEASE)
    assert store.start_create(second.id, "w1", now + 5, LEASE) is not None
    assert store.start_create(third.id, "w1", now + 5, LEASE) is None
    ended = uj.JobUpdate(state=uj.JobState.ENDED, end_status=uj.EndStatus.CANCELLED)
    store.update_job(second.id, "w1", ended, now + 6, LEASE)
    assert store.start_create(third.id, "w1", now + 7, LEASE) is not None
    assert store.start_create("ujob_none", "w1", now + 7, LEASE) is None


def test_concurrent_creates_of_a_kind_begin_one_at_a_time(store: port.JobStore) -> None:
    make_batch(store, 8)
    now = time.time()
    jobs = [new_job(now=now, kind="anthropic_batch") for _ in range(8)]
    for job in jobs:
        store.assemble_job(job, 1, now)
    begun: list[str] = []
    barrier = threading.Barrier(len(jobs))

    def begin(job: uj.UpstreamJob) -> None:
        barrier.wait()
        if store.start_create(job.id, "w1", now + 1, LEASE) is not None:
            begun.append(job.id)

    threads = [threading.Thread(target=begin, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(begun) == 1


def test_each_rows_path_is_read_with_its_result_and_counted_when_it_served(
    store: port.JobStore,
) -> None:
    """A row's route comes back with its result (``served_by`` only once a
    path answered it), and ``served_paths`` counts the rows each path served."""
    batch = make_batch(store, 5)
    plain = make_batch(store, 1, model="plain")
    job, (by_batch, refused, fell_back, dropped, _held) = assemble(store)
    now = time.time()
    store.release_job_requests(job.id, [fell_back.id, dropped.id], now, route=uj.Path.REALTIME)
    ended = bm.Outcome(
        refused.id, refused.attempt, job.id, RequestState.ERRORED, route=uj.Path.BATCH
    )
    assert store.record_outcomes([outcome(job.id, by_batch), ended], now) == [True, True]
    first, second = store.claim("m", 10, "w1", now, LEASE, route="realtime")
    assert {first.id, second.id} == {fell_back.id, dropped.id}
    served = bm.Outcome(
        fell_back.id, 1, "w1", RequestState.SUCCEEDED, result={}, route=uj.Path.REALTIME
    )
    retried = bm.Outcome(dropped.id, 1, "w1", RequestState.QUEUED, not_before=now + 60)
    assert store.record_outcomes([served, retried], now) == [True, True]
    store.cancel_batch(batch.id, batch.owner, now)  # ends the queued one and the held one
    found = [(row.state, row.route, row.served_by) for row in store.iter_results(batch.id)]
    assert found == [
        (RequestState.SUCCEEDED, "batch", "batch"),
        (RequestState.ERRORED, "batch", "batch"),
        (RequestState.SUCCEEDED, "realtime", "realtime"),
        (RequestState.CANCELED, "realtime", None),  # routed, never served
        (RequestState.CANCELED, None, None),
    ]
    assert store.served_paths(batch.id) == {uj.Path.BATCH: 2, uj.Path.REALTIME: 1}
    assert [row.route for row in store.iter_results(plain.id)] == [None]
    assert store.served_paths(plain.id) == {}
    assert store.served_paths("batch_none") == {}
