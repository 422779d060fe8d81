"""The JobStore contract: every behaviour here holds on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from batchgate.domain import batch as bm
from batchgate.domain import ids, result_files
from batchgate.domain.states import BatchStatus, Dialect, RequestState
from batchgate.store import port, sql

LEASE = 30.0


def make_batch(
    store: sql.SqlJobStore,
    n: int,
    *,
    owner: str = "key_a",
    model: str = "m",
    window: float = 3600.0,
    created_at: float | None = None,
    dialect: Dialect = Dialect.NATIVE,
) -> bm.Batch:
    now = created_at if created_at is not None else time.time()
    batch = bm.Batch(
        id=ids.new_batch_id(dialect),
        owner=owner,
        dialect=dialect,
        endpoint="/v1/messages",
        input_file_id=None,
        completion_window="24h",
        metadata=None,
        status=BatchStatus.IN_PROGRESS,
        errors=None,
        total=n,
        created_at=now,
        expires_at=now + window,
        in_progress_at=now,
    )
    store.create_batch(
        batch, [bm.NewRequest(custom_id=f"r{i}", model=model, params="{}") for i in range(n)]
    )
    return batch


def succeed(store: sql.SqlJobStore, claimed: bm.ClaimedRequest, worker: str = "w1") -> bool:
    return store.record_outcomes(
        [
            port.Outcome(
                claimed.id,
                claimed.attempt,
                worker,
                RequestState.SUCCEEDED,
                result={"ok": claimed.custom_id},
                input_tokens=2,
                output_tokens=3,
                cost=0.5,
            )
        ],
        time.time(),
    )[0]


def test_claim_leases_each_request_once(store: sql.SqlJobStore) -> None:
    make_batch(store, 5)
    now = time.time()
    first = store.claim("m", 3, "w1", now, LEASE)
    second = store.claim("m", 3, "w2", now, LEASE)
    assert [c.custom_id for c in first] == ["r0", "r1", "r2"]
    assert [c.custom_id for c in second] == ["r3", "r4"]
    assert store.claim("m", 3, "w3", now, LEASE) == []


def test_claim_only_takes_the_requested_model(store: sql.SqlJobStore) -> None:
    make_batch(store, 2, model="other")
    assert store.claim("m", 5, "w1", time.time(), LEASE) == []
    assert len(store.claim("other", 5, "w1", time.time(), LEASE)) == 2


def test_concurrent_claims_never_share_a_request(store: sql.SqlJobStore) -> None:
    make_batch(store, 200)
    seen: list[int] = []
    lock = threading.Lock()

    def claimer(worker: str) -> None:
        while True:
            got = store.claim("m", 7, worker, time.time(), LEASE)
            if not got:
                return
            with lock:
                seen.extend(c.id for c in got)

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 200
    assert len(set(seen)) == 200


def test_result_write_is_fenced_on_the_lease(store: sql.SqlJobStore) -> None:
    make_batch(store, 1)
    stale = store.claim("m", 1, "w1", time.time(), lease_seconds=0.01)[0]
    time.sleep(0.05)
    assert store.requeue_lost_leases(time.time(), max_attempts=5) == 1
    fresh = store.claim("m", 1, "w2", time.time(), LEASE)[0]
    assert fresh.attempt == 2
    assert succeed(store, stale, worker="w1") is False
    assert succeed(store, fresh, worker="w2") is True
    rows = list(store.iter_results(stale.batch_id))
    assert [(r.state, r.result) for r in rows] == [(RequestState.SUCCEEDED, {"ok": "r0"})]


def test_lost_lease_after_last_attempt_errors(store: sql.SqlJobStore) -> None:
    batch = make_batch(store, 1)
    store.claim("m", 1, "w1", time.time(), lease_seconds=0.01)
    time.sleep(0.05)
    store.requeue_lost_leases(time.time(), max_attempts=1)
    (row,) = store.iter_results(batch.id)
    assert row.state is RequestState.ERRORED
    assert "lost" in row.error["message"]  # type: ignore[index]


def test_heartbeat_extends_only_held_leases(store: sql.SqlJobStore) -> None:
    make_batch(store, 2)
    claimed = store.claim("m", 2, "w1", time.time(), lease_seconds=0.05)
    ids = [c.id for c in claimed]
    assert store.extend_leases("w1", ids, time.time(), LEASE) == set(ids)
    time.sleep(0.1)
    assert store.requeue_lost_leases(time.time(), max_attempts=5) == 0
    assert store.extend_leases("w2", ids, time.time(), LEASE) == set()


def test_heartbeat_lets_the_lease_of_an_abandoned_request_run_out(
    store: sql.SqlJobStore,
) -> None:
    make_batch(store, 2)
    kept, abandoned = store.claim("m", 2, "w1", time.time(), lease_seconds=0.05)
    assert store.extend_leases("w1", [kept.id], time.time(), LEASE) == {kept.id}
    time.sleep(0.1)
    assert store.requeue_lost_leases(time.time(), max_attempts=5) == 1
    again = store.claim("m", 2, "w2", time.time(), LEASE)
    assert [c.id for c in again] == [abandoned.id]


def test_retry_outcome_requeues_not_before(store: sql.SqlJobStore) -> None:
    make_batch(store, 1)
    claimed = store.claim("m", 1, "w1", time.time(), LEASE)[0]
    later = time.time() + 60
    store.record_outcomes(
        [
            port.Outcome(
                claimed.id,
                claimed.attempt,
                "w1",
                RequestState.QUEUED,
                error={"message": "429"},
                not_before=later,
            )
        ],
        time.time(),
    )
    assert store.claim("m", 1, "w1", time.time(), LEASE) == []
    again = store.claim("m", 1, "w1", later + 1, LEASE)
    assert [c.attempt for c in again] == [2]


def test_finalize_completes_batch_with_usage(store: sql.SqlJobStore) -> None:
    batch = make_batch(store, 2)
    for claimed in store.claim("m", 2, "w1", time.time(), LEASE):
        succeed(store, claimed)
    assert store.finalize_batches(time.time()) == [batch.id]
    done = store.get_batch(batch.id)
    assert done is not None
    assert done.status is BatchStatus.COMPLETED
    assert done.completed_at is not None and done.finalizing_at is not None
    assert (done.tally.input_tokens, done.tally.output_tokens) == (4, 6)
    assert done.tally.cost == pytest.approx(1.0)


def test_cancel_keeps_finished_results_and_counts_add_up(store: sql.SqlJobStore) -> None:
    batch = make_batch(store, 4)
    claimed = store.claim("m", 2, "w1", time.time(), LEASE)
    succeed(store, claimed[0])
    cancelling = store.cancel_batch(batch.id, "key_a", time.time())
    assert cancelling is not None and cancelling.status is BatchStatus.CANCELLING
    assert succeed(store, claimed[1]) is False  # its lease ended with the cancel
    store.finalize_batches(time.time())
    done = store.get_batch(batch.id)
    assert done is not None and done.status is BatchStatus.CANCELLED
    assert done.tally.count(RequestState.SUCCEEDED) == 1
    assert done.tally.count(RequestState.CANCELED) == 3
    assert done.tally.total == 4


def test_cancel_by_another_owner_finds_nothing(store: sql.SqlJobStore) -> None:
    batch = make_batch(store, 1)
    assert store.cancel_batch(batch.id, "key_b", time.time()) is None
    assert store.get_batch(batch.id, "key_b") is None


def test_expiry_ends_open_requests_expired(store: sql.SqlJobStore) -> None:
    batch = make_batch(store, 3, window=0.01)
    claimed = store.claim("m", 1, "w1", time.time(), LEASE)
    succeed(store, claimed[0])
    time.sleep(0.05)
    assert store.expire_batches(time.time()) == [batch.id]
    done = store.get_batch(batch.id)
    assert done is not None and done.status is BatchStatus.EXPIRED
    assert done.tally.count(RequestState.EXPIRED) == 2
    assert done.tally.count(RequestState.SUCCEEDED) == 1


def test_fair_claim_serves_small_batch_beside_big_one(store: sql.SqlJobStore) -> None:
    make_batch(store, 100, owner="key_a", created_at=time.time() - 10)
    small = make_batch(store, 3, owner="key_b")
    got = store.claim("m", 6, "w1", time.time(), LEASE)
    assert sum(1 for c in got if c.batch_id == small.id) == 3


def test_custom_ids_are_unique_within_a_batch(store: sql.SqlJobStore) -> None:
    now = time.time()
    batch = bm.Batch(
        id="batch_dup",
        owner="key_a",
        dialect=Dialect.NATIVE,
        endpoint="/v1/messages",
        input_file_id=None,
        completion_window="24h",
        metadata=None,
        status=BatchStatus.IN_PROGRESS,
        errors=None,
        total=2,
        created_at=now,
        expires_at=now + 60,
    )
    with pytest.raises(sa.exc.IntegrityError):
        store.create_batch(batch, [bm.NewRequest("same", "m", "{}")] * 2)
    assert store.get_batch("batch_dup") is None  # nothing half-stored


def test_list_is_newest_first_with_cursor_and_owner_scope(store: sql.SqlJobStore) -> None:
    base = time.time()
    made = [make_batch(store, 1, created_at=base + i) for i in range(5)]
    make_batch(store, 1, owner="key_b")
    page, more = store.list_batches("key_a", limit=2)
    assert [b.id for b in page] == [made[4].id, made[3].id] and more
    page, more = store.list_batches("key_a", limit=10, after=made[3].id)
    assert [b.id for b in page] == [made[2].id, made[1].id, made[0].id] and not more
    page, _ = store.list_batches("key_a", limit=2, before=made[1].id)
    assert [b.id for b in page] == [made[3].id, made[2].id]


def test_file_content_round_trips_in_chunks(store: sql.SqlJobStore) -> None:
    payload = [bytes([i % 251]) * 700_000 for i in range(4)]
    record = port.FileRecord(
        id="file-x",
        owner="key_a",
        purpose="batch",
        filename="a.jsonl",
        bytes=0,
        status="processed",
        created_at=time.time(),
    )
    stored = store.create_file(record, payload)
    assert stored.bytes == 2_800_000
    assert b"".join(store.iter_file_chunks("file-x")) == b"".join(payload)
    assert store.get_file("file-x", "key_b") is None
    assert store.delete_file("file-x", "key_a", time.time())
    assert store.get_file("file-x", "key_a") is None
    assert list(store.iter_file_chunks("file-x")) == []


def test_keys_are_found_by_prefix_and_revocable(store: sql.SqlJobStore) -> None:
    key = store.create_key("ci", "h" * 64, "bg-abcdefg", time.time())
    assert store.keys_with_prefix("bg-abcdefg") == [(key, "h" * 64)]
    assert store.count_active_keys() == 1
    assert store.revoke_key("ci", time.time()) == 1
    assert store.count_active_keys() == 0


def test_migrations_are_idempotent(store_url: str) -> None:
    for _ in range(2):
        sql.SqlJobStore.open(store_url).close()


def _result_files(store: sql.SqlJobStore, owner: str = "key_a") -> dict[str, port.FileRecord]:
    records, _ = store.list_files(
        owner, purpose=result_files.PURPOSE, limit=100, after=None, ascending=True
    )
    return {record.kind: record for record in records}


def test_ending_an_openai_batch_creates_its_result_file_rows(store: sql.SqlJobStore) -> None:
    batch = make_batch(store, 3, dialect=Dialect.OPENAI)
    first, second, third = store.claim("m", 3, "w1", time.time(), LEASE)
    succeed(store, first)
    succeed(store, second)
    store.record_outcomes(
        [port.Outcome(third.id, third.attempt, "w1", RequestState.ERRORED, error={"m": 1})],
        time.time(),
    )
    assert store.finalize_batches(time.time()) == [batch.id]
    files = _result_files(store)
    assert set(files) == {"output", "errors"}
    for kind, record in files.items():
        assert record.id == result_files.file_id(batch.id, result_files.FileKind(kind))
        assert record.batch_id == batch.id and record.status == "uploaded"
    assert _result_files(store, owner="key_b") == {}


def test_a_batch_with_no_failures_gets_no_error_file(store: sql.SqlJobStore) -> None:
    make_batch(store, 1, dialect=Dialect.OPENAI)
    succeed(store, store.claim("m", 1, "w1", time.time(), LEASE)[0])
    store.finalize_batches(time.time())
    assert set(_result_files(store)) == {"output"}


def test_native_batches_get_no_result_files(store: sql.SqlJobStore) -> None:
    make_batch(store, 1)
    succeed(store, store.claim("m", 1, "w1", time.time(), LEASE)[0])
    store.finalize_batches(time.time())
    assert _result_files(store) == {}


def test_expiry_creates_the_error_file_once(store: sql.SqlJobStore) -> None:
    batch = make_batch(store, 2, window=0.01, dialect=Dialect.OPENAI)
    time.sleep(0.05)
    assert store.expire_batches(time.time()) == [batch.id]
    assert store.expire_batches(time.time()) == []
    assert store.finalize_batches(time.time()) == []
    assert set(_result_files(store)) == {"errors"}


def test_cancelled_openai_batch_gets_an_error_file(store: sql.SqlJobStore) -> None:
    batch = make_batch(store, 2, dialect=Dialect.OPENAI)
    store.cancel_batch(batch.id, "key_a", time.time())
    assert store.finalize_batches(time.time()) == [batch.id]
    assert store.finalize_batches(time.time()) == []
    assert set(_result_files(store)) == {"errors"}


def test_set_file_bytes_records_a_measured_size(store: sql.SqlJobStore) -> None:
    make_batch(store, 1, dialect=Dialect.OPENAI)
    succeed(store, store.claim("m", 1, "w1", time.time(), LEASE)[0])
    store.finalize_batches(time.time())
    output = _result_files(store)["output"]
    store.set_file_bytes(output.id, 1234)
    measured = store.get_file(output.id, "key_a")
    assert measured is not None and (measured.bytes, measured.status) == (1234, "processed")


def test_migrated_schema_matches_the_table_definitions(store: sql.SqlJobStore) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from batchgate.store import tables

    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), tables.metadata)
    assert diff == []
