"""Admission quotas in the store: checked in the transaction that stores the
work, on every store, and race-safe across connections."""

from __future__ import annotations

import secrets
import threading
import time

import pytest

from batchgate.domain import batch as bm
from batchgate.domain import errors, ids, keys, quotas
from batchgate.domain import files as file_model
from batchgate.domain.states import RequestState
from batchgate.store import port
from tests.contract import builders

LEASE = 30.0


def quota_key(store: port.JobStore, **limits: object) -> str:
    key = store.create_key(
        "q",
        secrets.token_hex(32),
        "bg-" + ids.new_key_id()[-7:],
        time.time(),
        quotas=keys.KeyQuotas(**limits),  # type: ignore[arg-type]
    )
    return key.id


def submit(
    store: port.JobStore,
    owner: str,
    tokens: list[int],
    *,
    model: str = "m",
    defaults: keys.KeyQuotas | None = None,
    input_file: bytes | None = None,
) -> bm.Batch:
    batch = builders.new_batch(len(tokens), owner=owner)
    demand = quotas.Demand(tokens={model: sum(tokens)}, requests=len(tokens), batches=1)
    file = None
    if input_file is not None:
        record = file_model.FileRecord(
            id=ids.new_file_id(),
            owner=owner,
            purpose=file_model.FilePurpose.BATCH,
            filename="batch.jsonl",
            bytes=0,
            status=file_model.FileStatus.PROCESSED,
            created_at=batch.created_at,
        )
        file = (record, [input_file])
    store.create_batch(
        batch,
        [
            bm.NewRequest(custom_id=f"r{i}", model=model, params="{}", enqueued_tokens=n)
            for i, n in enumerate(tokens)
        ],
        quotas.Admission(demand, defaults or keys.KeyQuotas()),
        file,
    )
    return batch


def refused_code(call: object) -> str | None:
    try:
        call()  # type: ignore[operator]
    except errors.BatchgateError as exc:
        return exc.code
    return None


def test_a_batch_over_the_token_quota_stores_nothing(store: port.JobStore) -> None:
    owner = quota_key(store, max_enqueued_tokens={"m": 100})
    code = refused_code(lambda: submit(store, owner, [60, 60], input_file=b'{"x": 1}\n'))
    assert code == "token_limit_exceeded"
    assert store.list_batches(owner, limit=10) == ([], False)
    files, _ = store.list_files(owner, purpose=None, limit=10, after=None, ascending=True)
    assert files == []


def test_enqueued_tokens_are_released_as_requests_end(store: port.JobStore) -> None:
    owner = quota_key(store, max_enqueued_tokens={"m": 100})
    submit(store, owner, [40, 40])
    assert refused_code(lambda: submit(store, owner, [40])) == "token_limit_exceeded"
    claimed = store.claim("m", 1, "w1", time.time(), LEASE)
    store.record_outcomes(
        [bm.Outcome(claimed[0].id, claimed[0].attempt, "w1", RequestState.SUCCEEDED, result={})],
        time.time(),
    )
    submit(store, owner, [40])  # 40 freed: fits again


def test_cancelling_a_batch_releases_its_tokens(store: port.JobStore) -> None:
    owner = quota_key(store, max_enqueued_tokens={"m": 100})
    first = submit(store, owner, [90])
    assert refused_code(lambda: submit(store, owner, [20])) == "token_limit_exceeded"
    store.cancel_batch(first.id, owner, time.time())
    store.finalize_batches(time.time())
    submit(store, owner, [20])


def test_quotas_are_per_key_and_per_model(store: port.JobStore) -> None:
    first = quota_key(store, max_enqueued_tokens={"m": 100})
    second = quota_key(store, max_enqueued_tokens={"m": 100})
    submit(store, first, [100])
    submit(store, second, [100])  # the first key's usage is not the second's
    submit(store, first, [500], model="other")  # no quota on that model


def test_a_keys_own_quota_overrides_the_configured_default(store: port.JobStore) -> None:
    owner = quota_key(store, max_enqueued_tokens={"m": 50})
    defaults = keys.KeyQuotas(max_enqueued_tokens={"m": 1000, "n": 10})
    assert refused_code(lambda: submit(store, owner, [60], defaults=defaults)) == (
        "token_limit_exceeded"
    )
    code = refused_code(lambda: submit(store, owner, [11], model="n", defaults=defaults))
    assert code == "token_limit_exceeded"  # the default still holds where the key is silent


def test_concurrent_admissions_never_pass_the_quota(store: port.JobStore) -> None:
    owner = quota_key(store, max_enqueued_tokens={"m": 100})
    barrier = threading.Barrier(8)
    outcomes: list[str | None] = []
    lock = threading.Lock()

    def one() -> None:
        barrier.wait()
        code = refused_code(lambda: submit(store, owner, [30]))
        with lock:
            outcomes.append(code)

    threads = [threading.Thread(target=one) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes, key=str) == [None] * 3 + ["token_limit_exceeded"] * 5
    batches, _ = store.list_batches(owner, limit=100)
    assert len(batches) == 3


def test_active_batch_quota(store: port.JobStore) -> None:
    owner = quota_key(store, max_active_batches=2)
    submit(store, owner, [1])
    ending = submit(store, owner, [1])
    assert refused_code(lambda: submit(store, owner, [1])) == "batch_limit_exceeded"
    store.cancel_batch(ending.id, owner, time.time())
    store.finalize_batches(time.time())
    submit(store, owner, [1])


def test_requests_per_batch_limit_is_a_413_not_a_retryable_429(store: port.JobStore) -> None:
    owner = quota_key(store, max_requests_per_batch=2)
    with pytest.raises(errors.PayloadTooLarge):
        submit(store, owner, [1, 1, 1])


def test_stored_bytes_quota_counts_every_stored_file(store: port.JobStore) -> None:
    owner = quota_key(store, max_file_bytes=100)
    admission = quotas.Admission(quotas.Demand())

    def upload(size: int) -> file_model.FileRecord:
        record = file_model.FileRecord(
            id=ids.new_file_id(),
            owner=owner,
            purpose=file_model.FilePurpose.BATCH,
            filename="in.jsonl",
            bytes=0,
            status=file_model.FileStatus.PROCESSED,
            created_at=time.time(),
        )
        return store.create_file(record, [b"x" * size], admission)

    kept = upload(60)
    assert refused_code(lambda: upload(41)) == "storage_limit_exceeded"
    files, _ = store.list_files(owner, purpose=None, limit=10, after=None, ascending=True)
    assert [f.id for f in files] == [kept.id]  # the refused upload left nothing
    store.delete_file(kept.id, owner, time.time())
    upload(100)


def test_an_owner_without_a_key_row_gets_the_defaults(store: port.JobStore) -> None:
    defaults = keys.KeyQuotas(max_enqueued_tokens={"m": 10})
    code = refused_code(lambda: submit(store, "local", [11], defaults=defaults))
    assert code == "token_limit_exceeded"


def test_enqueued_tokens_sum_the_owners_open_requests_per_model(store: port.JobStore) -> None:
    owner = quota_key(store)
    submit(store, owner, [5, 7])
    submit(store, owner, [100], model="other")
    submit(store, quota_key(store), [1000])  # someone else's
    assert store.enqueued_tokens(owner, ["m", "other", "none"]) == {"m": 12, "other": 100}


def test_check_admission_answers_as_create_would_and_stores_nothing(
    store: port.JobStore,
) -> None:
    owner = quota_key(store, max_enqueued_tokens={"m": 100}, max_active_batches=2)
    submit(store, owner, [60])

    def ask(tokens: int) -> str | None:
        demand = quotas.Demand(tokens={"m": tokens}, requests=1, batches=1)
        return refused_code(lambda: store.check_admission(owner, quotas.Admission(demand)))

    assert ask(40) is None
    assert ask(41) == "token_limit_exceeded"
    # Asking held nothing: the 40 tokens it admitted are still free.
    submit(store, owner, [40])
    assert ask(0) == "batch_limit_exceeded"
    assert len(store.list_batches(owner, limit=10)[0]) == 2
