"""Retention in the store contract: expiry set when batches end, bounded
purge steps, tallies kept, files expiring, upstream jobs going once nothing
needs them; on SQLite, PostgreSQL and in memory."""

from __future__ import annotations

import time

import pytest

from batchgate.domain import batch as bm
from batchgate.domain import files as file_model
from batchgate.domain import result_files, retention
from batchgate.domain import upstream_jobs as uj
from batchgate.domain.states import Dialect, RequestState
from batchgate.store import port
from tests.contract.builders import LEASE, make_batch, seed_job, succeed


def purge_all(store: port.JobStore, now: float | None = None, max_rows: int = 2) -> int:
    """Run purge steps until nothing is due; returns how many steps it took."""
    steps = 0
    while store.purge_step(time.time() if now is None else now, max_rows):
        steps += 1
    return steps


def ended_batch(
    store: port.JobStore, n: int, ttl: int | None, dialect: Dialect = Dialect.NATIVE
) -> bm.Batch:
    """A batch of ``n`` succeeded requests that ended now, keeping results ``ttl`` s."""
    now = time.time()
    batch = make_batch(store, n, dialect=dialect, results_ttl=ttl)
    for claimed in store.claim("m", n, "w1", now, LEASE):
        succeed(store, claimed)
    assert store.finalize_batches(now, [batch.id]) == [batch.id]
    return batch


def test_ending_a_batch_sets_when_its_results_expire(store: port.JobStore) -> None:
    batch = ended_batch(store, 2, ttl=3600)
    ended = store.get_batch(batch.id)
    assert ended is not None and ended.completed_at is not None
    assert ended.results_expire_at == pytest.approx(ended.completed_at + 3600)


def test_a_batch_kept_forever_never_expires(store: port.JobStore) -> None:
    batch = ended_batch(store, 1, ttl=None)
    ended = store.get_batch(batch.id)
    assert ended is not None and ended.results_expire_at is None
    assert purge_all(store, now=time.time() + 10**9) == 0


def test_purge_removes_expired_rows_in_bounded_steps_and_keeps_the_tally(
    store: port.JobStore,
) -> None:
    batch = ended_batch(store, 5, ttl=60)
    kept = ended_batch(store, 2, ttl=86400)
    before = store.get_batch(batch.id)
    assert before is not None
    # Five rows two at a time: three steps, the last one finishing the batch.
    assert purge_all(store, now=time.time() + 120, max_rows=2) == 3
    after = store.get_batch(batch.id)
    assert after is not None and after.tally == before.tally
    assert list(store.iter_results(batch.id)) == []
    assert len(list(store.iter_results(kept.id))) == 2
    assert purge_all(store, now=time.time() + 120) == 0  # nothing left to do


def test_purge_expires_an_openai_batchs_result_files_with_it(store: port.JobStore) -> None:
    batch = ended_batch(store, 1, ttl=60, dialect=Dialect.OPENAI)
    output_id = result_files.file_id(batch.id, file_model.FileKind.OUTPUT)
    output = store.get_file(output_id, "key_a")
    ended = store.get_batch(batch.id)
    assert output is not None and ended is not None
    assert output.expires_at == ended.results_expire_at


def test_expired_files_leave_listings_and_lose_their_content(store: port.JobStore) -> None:
    now = time.time()
    for name, expires_at in (("file-old", now - 1), ("file-new", now + 3600)):
        record = file_model.FileRecord(
            id=name,
            owner="key_a",
            purpose=file_model.FilePurpose.BATCH,
            filename="a.jsonl",
            bytes=0,
            status=file_model.FileStatus.PROCESSED,
            created_at=now,
            expires_at=expires_at,
        )
        store.create_file(record, [b"x" * 10])
    listed, _ = store.list_files(
        "key_a", purpose=None, limit=10, after=None, ascending=True, now=now
    )
    assert [record.id for record in listed] == ["file-new"]
    old = store.get_file("file-old", "key_a")
    assert old is not None and old.is_expired(now)
    purge_all(store, now=now)
    assert list(store.iter_file_chunks("file-old")) == []
    assert list(store.iter_file_chunks("file-new")) == [b"x" * 10]


def test_a_deleted_batchs_rows_go_with_the_sweep(store: port.JobStore) -> None:
    batch = ended_batch(store, 3, ttl=None)
    assert store.delete_batch(batch.id, "key_a", time.time())
    assert store.get_batch(batch.id) is None
    purge_all(store)
    assert list(store.iter_results(batch.id)) == []


def test_purge_never_touches_a_running_batch(store: port.JobStore) -> None:
    running = make_batch(store, 3)
    purge_all(store, now=time.time() + 10**9)
    assert len(list(store.iter_results(running.id))) == 3


def test_reclaiming_space_after_a_purge_keeps_what_is_still_kept(store: port.JobStore) -> None:
    ended_batch(store, 2, ttl=60)
    kept = ended_batch(store, 2, ttl=86400)
    purge_all(store, now=time.time() + 120)
    store.reclaim_space()
    assert len(list(store.iter_results(kept.id))) == 2


# -- upstream jobs ------------------------------------------------------------
def job_serving(store: port.JobStore, batch: bm.Batch, ended_at: float) -> uj.UpstreamJob:
    """A done upstream job that served every row of ``batch`` (the only
    queued rows of model ``m``), ended at ``ended_at``; the batch ends now."""
    now = time.time()
    job = seed_job(store, "m", batch.total, submitted_at=ended_at - 60, ended_at=ended_at)
    outcomes = [
        bm.Outcome(h.id, h.attempt, job.id, RequestState.SUCCEEDED, result={}, route=uj.Path.BATCH)
        for h in store.job_requests(job.id)
    ]
    assert all(store.record_outcomes(outcomes, now))
    done = store.update_job(job.id, "seed", uj.JobUpdate(downloaded_at=ended_at), now, LEASE)
    assert done is not None and done.done
    assert store.finalize_batches(now, [batch.id]) == [batch.id]
    return done


def job_ids(store: port.JobStore) -> set[str]:
    return {job.id for job in store.list_jobs()}


def test_a_done_job_goes_once_its_rows_are_purged_and_it_is_old_enough(
    store: port.JobStore,
) -> None:
    ended = time.time()
    purged = job_serving(store, make_batch(store, 2, results_ttl=60), ended)
    forever = make_batch(store, 1, results_ttl=None)
    kept = job_serving(store, forever, ended)
    # The purged batch's rows go at once; its job stays as long as a crash
    # look-up or the turnaround may still read it.
    purge_all(store, now=ended + retention.JOB_KEEP_SECONDS - 10)
    assert job_ids(store) == {purged.id, kept.id}
    purge_all(store, now=ended + retention.JOB_KEEP_SECONDS + 10)
    # A batch kept forever keeps the job its page lists.
    assert job_ids(store) == {kept.id}
    assert [job.id for job in store.jobs_for_batch(forever.id)] == [kept.id]


def test_a_job_whose_rows_went_to_a_later_job_goes_and_an_open_job_stays(
    store: port.JobStore,
) -> None:
    now = time.time()
    batch = make_batch(store, 2, results_ttl=None)
    first = seed_job(store, "m", 2, submitted_at=now - 60, worker="w1")
    held = [h.id for h in store.job_requests(first.id)]
    assert store.release_job_requests(first.id, held, now) == 2  # the upstream failed it
    ended = uj.JobUpdate(
        state=uj.JobState.ENDED,
        end_status=uj.EndStatus.FAILED,
        ended_at=now,
        downloaded_at=now,
    )
    assert store.update_job(first.id, "w1", ended, now, LEASE) is not None
    second = seed_job(store, "m", 2, submitted_at=now, worker="w2")  # still running
    purge_all(store, now=now + 10 * retention.JOB_KEEP_SECONDS)
    assert job_ids(store) == {second.id}
    assert [job.id for job in store.jobs_for_batch(batch.id)] == [second.id]
