"""The JobStore contract: every behaviour here holds on every store (SQLite,
PostgreSQL, and the in-memory one in batchgate.testing)."""

from __future__ import annotations

import secrets
import threading
import time

import pytest
import sqlalchemy as sa

from batchgate.domain import batch as bm
from batchgate.domain import errors, failures, keys, result_files, retry
from batchgate.domain import files as file_model
from batchgate.domain.states import BatchStatus, Dialect, RequestState
from batchgate.store import port, sql
from tests.contract.builders import LEASE, make_batch, succeed

ERROR = failures.RequestError(failures.ErrorType.API, "boom")
LATER = 1.0  # seconds: past every short lease and window below, without sleeping


def test_claim_leases_each_request_once(store: port.JobStore) -> None:
    make_batch(store, 5)
    now = time.time()
    first = store.claim("m", 3, "w1", now, LEASE)
    second = store.claim("m", 3, "w2", now, LEASE)
    assert [c.custom_id for c in first] == ["r0", "r1", "r2"]
    assert [c.custom_id for c in second] == ["r3", "r4"]
    assert store.claim("m", 3, "w3", now, LEASE) == []


def test_claim_only_takes_the_requested_model(store: port.JobStore) -> None:
    make_batch(store, 2, model="other")
    assert store.claim("m", 5, "w1", time.time(), LEASE) == []
    assert len(store.claim("other", 5, "w1", time.time(), LEASE)) == 2


def test_concurrent_claims_never_share_a_request(store: port.JobStore) -> None:
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


def test_result_write_is_fenced_on_the_lease(store: port.JobStore) -> None:
    make_batch(store, 1)
    stale = store.claim("m", 1, "w1", time.time(), lease_seconds=0.01)[0]
    later = time.time() + LATER
    assert store.requeue_lost_leases(later, retry.RetryPolicy(max_attempts=5)) == 1
    fresh = store.claim("m", 1, "w2", later, LEASE)[0]
    assert fresh.attempt == 2
    assert succeed(store, stale, worker="w1") is False
    assert succeed(store, fresh, worker="w2") is True
    rows = list(store.iter_results(stale.batch_id))
    assert [(r.state, r.result) for r in rows] == [(RequestState.SUCCEEDED, {"ok": "r0"})]


def test_a_batch_has_the_model_its_requests_name(store: port.JobStore) -> None:
    stored = store.get_batch(make_batch(store, 2, model="m1").id)
    assert stored is not None and stored.model == "m1"


def test_batch_usage_sums_cached_and_reasoning_tokens(store: port.JobStore) -> None:
    batch = make_batch(store, 2)
    for claimed in store.claim("m", 2, "w1", time.time(), LEASE):
        outcome = bm.Outcome(
            claimed.id,
            claimed.attempt,
            "w1",
            RequestState.SUCCEEDED,
            result={},
            input_tokens=10,
            output_tokens=7,
            cached_tokens=4,
            reasoning_tokens=3,
        )
        assert store.record_outcomes([outcome], time.time()) == [True]
    usage = store.tally(batch.id).usage()
    assert usage["input_tokens_details"] == {"cached_tokens": 8}
    assert usage["output_tokens_details"] == {"reasoning_tokens": 6}
    assert (usage["input_tokens"], usage["output_tokens"], usage["total_tokens"]) == (20, 14, 34)


def test_results_carry_their_request_params_only_when_asked(store: port.JobStore) -> None:
    batch = make_batch(store, 2)
    assert [row.params for row in store.iter_results(batch.id)] == [None, None]
    assert [row.params for row in store.iter_results(batch.id, with_params=True)] == ["{}", "{}"]


def test_lost_lease_after_last_attempt_errors(store: port.JobStore) -> None:
    batch = make_batch(store, 1)
    store.claim("m", 1, "w1", time.time(), lease_seconds=0.01)
    store.requeue_lost_leases(time.time() + LATER, retry.RetryPolicy(max_attempts=1))
    (row,) = store.iter_results(batch.id)
    assert row.state is RequestState.ERRORED
    assert row.error is not None and "lost" in row.error.message


def test_heartbeat_extends_only_held_leases(store: port.JobStore) -> None:
    make_batch(store, 2)
    claimed = store.claim("m", 2, "w1", time.time(), lease_seconds=0.05)
    ids = [c.id for c in claimed]
    assert store.extend_leases("w1", ids, time.time(), LEASE) == set(ids)
    assert store.requeue_lost_leases(time.time() + LATER, retry.RetryPolicy(max_attempts=5)) == 0
    assert store.extend_leases("w2", ids, time.time(), LEASE) == set()


def test_heartbeat_lets_the_lease_of_an_abandoned_request_run_out(
    store: port.JobStore,
) -> None:
    make_batch(store, 2)
    kept, abandoned = store.claim("m", 2, "w1", time.time(), lease_seconds=0.05)
    assert store.extend_leases("w1", [kept.id], time.time(), LEASE) == {kept.id}
    later = time.time() + LATER
    assert store.requeue_lost_leases(later, retry.RetryPolicy(max_attempts=5)) == 1
    again = store.claim("m", 2, "w2", later, LEASE)
    assert [c.id for c in again] == [abandoned.id]


def test_retry_outcome_requeues_not_before(store: port.JobStore) -> None:
    make_batch(store, 1)
    claimed = store.claim("m", 1, "w1", time.time(), LEASE)[0]
    later = time.time() + 60
    store.record_outcomes(
        [
            bm.Outcome(
                claimed.id,
                claimed.attempt,
                "w1",
                RequestState.QUEUED,
                error=failures.RequestError(failures.ErrorType.RATE_LIMIT, "429"),
                not_before=later,
            )
        ],
        time.time(),
    )
    assert store.claim("m", 1, "w1", time.time(), LEASE) == []
    again = store.claim("m", 1, "w1", later + 1, LEASE)
    assert [c.attempt for c in again] == [2]


def test_finalize_completes_batch_with_usage(store: port.JobStore) -> None:
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


def test_cancel_keeps_finished_results_and_counts_add_up(store: port.JobStore) -> None:
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


def test_cancel_by_another_owner_finds_nothing(store: port.JobStore) -> None:
    batch = make_batch(store, 1)
    assert store.cancel_batch(batch.id, "key_b", time.time()) is None
    assert store.get_batch(batch.id, "key_b") is None


def test_expiry_ends_open_requests_expired(store: port.JobStore) -> None:
    batch = make_batch(store, 3, window=0.01)
    claimed = store.claim("m", 1, "w1", time.time(), LEASE)
    succeed(store, claimed[0])
    assert store.expire_batches(time.time() + LATER) == [batch.id]
    done = store.get_batch(batch.id)
    assert done is not None and done.status is BatchStatus.EXPIRED
    assert done.tally.count(RequestState.EXPIRED) == 2
    assert done.tally.count(RequestState.SUCCEEDED) == 1


def test_fair_claim_serves_small_batch_beside_big_one(store: port.JobStore) -> None:
    make_batch(store, 100, owner="key_a", created_at=time.time() - 10)
    small = make_batch(store, 3, owner="key_b")
    got = store.claim("m", 6, "w1", time.time(), LEASE)
    assert sum(1 for c in got if c.batch_id == small.id) == 3


def test_custom_ids_are_unique_within_a_batch(store: port.JobStore) -> None:
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
    with pytest.raises(errors.Conflict):
        store.create_batch(batch, [bm.NewRequest("same", "m", "{}")] * 2)
    assert store.get_batch("batch_dup") is None  # nothing half-stored


def test_list_is_newest_first_with_cursor_and_owner_scope(store: port.JobStore) -> None:
    base = time.time()
    made = [make_batch(store, 1, created_at=base + i) for i in range(5)]
    make_batch(store, 1, owner="key_b")
    page, more = store.list_batches("key_a", limit=2)
    assert [b.id for b in page] == [made[4].id, made[3].id] and more
    page, more = store.list_batches("key_a", limit=10, after=made[3].id)
    assert [b.id for b in page] == [made[2].id, made[1].id, made[0].id] and not more
    page, _ = store.list_batches("key_a", limit=2, before=made[1].id)
    assert [b.id for b in page] == [made[3].id, made[2].id]


def test_list_without_an_owner_pages_through_every_keys_batches(
    store: port.JobStore,
) -> None:
    base = time.time()
    mine = make_batch(store, 1, created_at=base)
    theirs = make_batch(store, 1, owner="key_b", created_at=base + 1)
    newest = make_batch(store, 1, created_at=base + 2)
    page, more = store.list_batches(None, limit=2)
    assert [b.id for b in page] == [newest.id, theirs.id] and more
    page, more = store.list_batches(None, limit=2, after=theirs.id)
    assert [b.id for b in page] == [mine.id] and not more


def test_file_content_round_trips_in_chunks(store: port.JobStore) -> None:
    payload = [bytes([i % 251]) * 700_000 for i in range(4)]
    record = file_model.FileRecord(
        id="file-x",
        owner="key_a",
        purpose=file_model.FilePurpose.BATCH,
        filename="a.jsonl",
        bytes=0,
        status=file_model.FileStatus.PROCESSED,
        created_at=time.time(),
    )
    stored = store.create_file(record, payload)
    assert stored.bytes == 2_800_000
    assert b"".join(store.iter_file_chunks("file-x")) == b"".join(payload)
    assert store.get_file("file-x", "key_b") is None
    assert store.delete_file("file-x", "key_a", time.time())
    assert store.get_file("file-x", "key_a") is None
    while store.purge_step(time.time(), 500):  # the content goes with the retention sweep
        pass
    assert list(store.iter_file_chunks("file-x")) == []


def test_keys_are_found_by_prefix_and_revocable(store: port.JobStore) -> None:
    key = store.create_key("ci", "h" * 64, "bg-abcdefg", time.time())
    assert store.keys_with_prefix("bg-abcdefg") == [(key, "h" * 64)]
    assert store.count_active_keys() == 1
    assert store.revoke_key(key.id, time.time()) is keys.Revocation.REVOKED
    assert store.revoke_key(key.id, time.time()) is keys.Revocation.NOT_ACTIVE  # once
    assert store.revoke_key("key_000000000000", time.time()) is keys.Revocation.NOT_ACTIVE
    assert store.count_active_keys() == 0


def _admin(store: port.JobStore, name: str, expires_at: float | None = None) -> keys.ApiKey:
    return store.create_key(
        name,
        secrets.token_hex(32),
        "bg-" + secrets.token_hex(4)[:7],
        time.time(),
        admin=True,
        expires_at=expires_at,
    )


def test_the_last_active_admin_key_is_never_revoked(store: port.JobStore) -> None:
    first, second = _admin(store, "a"), _admin(store, "b")
    expired = _admin(store, "old", expires_at=time.time() - 1)
    plain = store.create_key("t", "p" * 64, "bg-plain00", time.time())
    assert store.revoke_key(first.id, time.time()) is keys.Revocation.REVOKED
    # An expired admin key does not count as the other admin, and may go.
    assert store.revoke_key(second.id, time.time()) is keys.Revocation.LAST_ADMIN
    assert store.revoke_key(expired.id, time.time()) is keys.Revocation.REVOKED
    assert store.revoke_key(plain.id, time.time()) is keys.Revocation.REVOKED
    assert store.revoke_key(second.id, time.time()) is keys.Revocation.LAST_ADMIN
    assert store.get_key(second.id) == second  # still active


def _revoke_at(
    store: port.JobStore,
    key_id: str,
    barrier: threading.Barrier,
    outcomes: dict[str, keys.Revocation],
) -> None:
    barrier.wait()
    outcomes[key_id] = store.revoke_key(key_id, time.time())


def test_concurrent_revokes_leave_one_admin_key(store: port.JobStore) -> None:
    survivor = _admin(store, "first")
    for attempt in range(5):
        pair = [survivor, _admin(store, f"admin {attempt}")]
        barrier = threading.Barrier(2)
        outcomes: dict[str, keys.Revocation] = {}

        threads = [
            threading.Thread(target=_revoke_at, args=(store, key.id, barrier, outcomes))
            for key in pair
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(o.value for o in outcomes.values()) == ["last_admin", "revoked"]
        active = [k for k in store.list_keys() if k.admin and k.revoked_at is None]
        assert len(active) == 1
        survivor = active[0]


def test_key_scope_expiry_and_quotas_round_trip(store: port.JobStore) -> None:
    quotas = keys.KeyQuotas(
        max_enqueued_tokens={"m": 1000},
        max_active_batches=2,
        max_requests_per_batch=10,
        max_file_bytes=4096,
    )
    key = store.create_key(
        "ops", "a" * 64, "bg-admin00", 1.0, admin=True, expires_at=99.0, quotas=quotas
    )
    assert store.get_key(key.id) == key
    assert (key.admin, key.expires_at, key.quotas) == (True, 99.0, quotas)
    plain = store.create_key("t", "b" * 64, "bg-plain00", 2.0)
    assert store.get_key(plain.id) == plain and not plain.admin
    assert plain.quotas == keys.KeyQuotas()


def test_upgrading_makes_the_oldest_existing_key_the_admin(store_url: str) -> None:
    from alembic import command
    from alembic.config import Config

    from batchgate.store import engine as engine_module

    engine = engine_module.create_engine(store_url)
    cfg = Config()
    cfg.set_main_option("script_location", str(engine_module._MIGRATIONS))
    with engine.connect().execution_options(write=True) as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001_initial")
        for name, created in (("second", 2.0), ("first", 1.0), ("third", 3.0)):
            conn.execute(
                sa.text(
                    "INSERT INTO api_keys (id, name, key_hash, prefix, created_at) "
                    "VALUES (:id, :name, :hash, 'p', :created)"
                ),
                {"id": f"key_{name}", "name": name, "hash": name * 8, "created": created},
            )
        conn.commit()
    engine.dispose()
    upgraded = sql.SqlJobStore.open(store_url)
    try:
        assert {k.name: k.admin for k in upgraded.list_keys()} == {
            "first": True,
            "second": False,
            "third": False,
        }
    finally:
        upgraded.close()


def test_migrations_are_idempotent(store_url: str) -> None:
    for _ in range(2):
        sql.SqlJobStore.open(store_url).close()


def _result_files(store: port.JobStore, owner: str = "key_a") -> dict[str, file_model.FileRecord]:
    records, _ = store.list_files(
        owner, purpose=file_model.FilePurpose.BATCH_OUTPUT, limit=100, after=None, ascending=True
    )
    return {record.kind: record for record in records}


def test_ending_an_openai_batch_creates_its_result_file_rows(store: port.JobStore) -> None:
    batch = make_batch(store, 3, dialect=Dialect.OPENAI)
    first, second, third = store.claim("m", 3, "w1", time.time(), LEASE)
    succeed(store, first)
    succeed(store, second)
    store.record_outcomes(
        [bm.Outcome(third.id, third.attempt, "w1", RequestState.ERRORED, error=ERROR)],
        time.time(),
    )
    assert store.finalize_batches(time.time()) == [batch.id]
    files = _result_files(store)
    assert set(files) == {"output", "errors"}
    for kind, record in files.items():
        assert record.id == result_files.file_id(batch.id, file_model.FileKind(kind))
        assert record.batch_id == batch.id and record.status == "uploaded"
    assert _result_files(store, owner="key_b") == {}


def test_a_batch_with_no_failures_gets_no_error_file(store: port.JobStore) -> None:
    make_batch(store, 1, dialect=Dialect.OPENAI)
    succeed(store, store.claim("m", 1, "w1", time.time(), LEASE)[0])
    store.finalize_batches(time.time())
    assert set(_result_files(store)) == {"output"}


def test_native_batches_get_no_result_files(store: port.JobStore) -> None:
    make_batch(store, 1)
    succeed(store, store.claim("m", 1, "w1", time.time(), LEASE)[0])
    store.finalize_batches(time.time())
    assert _result_files(store) == {}


def test_expiry_creates_the_error_file_once(store: port.JobStore) -> None:
    batch = make_batch(store, 2, window=0.01, dialect=Dialect.OPENAI)
    assert store.expire_batches(time.time() + LATER) == [batch.id]
    assert store.expire_batches(time.time() + LATER) == []
    assert store.finalize_batches(time.time()) == []
    assert set(_result_files(store)) == {"errors"}


def test_cancelled_openai_batch_gets_an_error_file(store: port.JobStore) -> None:
    batch = make_batch(store, 2, dialect=Dialect.OPENAI)
    store.cancel_batch(batch.id, "key_a", time.time())
    assert store.finalize_batches(time.time()) == [batch.id]
    assert store.finalize_batches(time.time()) == []
    assert set(_result_files(store)) == {"errors"}


def test_set_file_bytes_records_a_measured_size(store: port.JobStore) -> None:
    make_batch(store, 1, dialect=Dialect.OPENAI)
    succeed(store, store.claim("m", 1, "w1", time.time(), LEASE)[0])
    store.finalize_batches(time.time())
    output = _result_files(store)["output"]
    store.set_file_bytes(output.id, 1234)
    measured = store.get_file(output.id, "key_a")
    assert measured is not None and (measured.bytes, measured.status) == (1234, "processed")


def test_migrated_schema_matches_the_table_definitions(sql_store: sql.SqlJobStore) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from batchgate.store import tables

    with sql_store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), tables.metadata)
    assert diff == []


def test_iter_requests_yields_rows_of_the_given_states_as_submitted(
    store: sql.SqlJobStore,
) -> None:
    batch = make_batch(store, 3)
    first, _second, third = store.claim("m", 3, "w1", time.time(), LEASE)
    succeed(store, first)
    error = failures.RequestError(failures.ErrorType.RATE_LIMIT, "slow down")
    store.record_outcomes(
        [bm.Outcome(third.id, third.attempt, "w1", RequestState.ERRORED, error=error)],
        time.time(),
    )
    rows = list(store.iter_requests(batch.id, [RequestState.ERRORED, RequestState.RUNNING]))
    assert [(r.custom_id, r.model, r.params, r.state, r.error) for r in rows] == [
        ("r1", "m", "{}", RequestState.RUNNING, None),
        ("r2", "m", "{}", RequestState.ERRORED, error),
    ]
