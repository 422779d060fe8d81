"""Retention in the store contract: expiry set when batches end, bounded
purge steps, tallies kept, files expiring; on SQLite and PostgreSQL."""

from __future__ import annotations

import time

import pytest

from batchgate.domain import batch as bm
from batchgate.domain import files as file_model
from batchgate.domain import result_files
from batchgate.domain.states import Dialect
from batchgate.store import port
from tests.contract.builders import LEASE, make_batch, succeed


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
