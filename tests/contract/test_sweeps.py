"""The sweeps that end batches (port.BatchSweeps): finalize and expiry, and
the result-file rows ending an OpenAI batch creates. The state machine they
run is checked edge by edge in test_transitions.py."""

from __future__ import annotations

import time

import pytest

from batchgate.domain import batch as bm
from batchgate.domain import files as file_model
from batchgate.domain import result_files
from batchgate.domain.states import BatchStatus, Dialect, RequestState
from batchgate.store import port
from tests.contract.builders import ERROR, LATER, LEASE, make_batch, result_file_rows, succeed


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


def test_expiry_ends_open_requests_expired(store: port.JobStore) -> None:
    batch = make_batch(store, 3, window=0.01)
    claimed = store.claim("m", 1, "w1", time.time(), LEASE)
    succeed(store, claimed[0])
    assert store.expire_batches(time.time() + LATER) == [batch.id]
    done = store.get_batch(batch.id)
    assert done is not None and done.status is BatchStatus.EXPIRED
    assert done.tally.count(RequestState.EXPIRED) == 2
    assert done.tally.count(RequestState.SUCCEEDED) == 1


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
    files = result_file_rows(store)
    assert set(files) == {"output", "errors"}
    for kind, record in files.items():
        assert record.id == result_files.file_id(batch.id, file_model.FileKind(kind))
        assert record.batch_id == batch.id and record.status == "uploaded"
    assert result_file_rows(store, owner="key_b") == {}


def test_a_batch_with_no_failures_gets_no_error_file(store: port.JobStore) -> None:
    make_batch(store, 1, dialect=Dialect.OPENAI)
    succeed(store, store.claim("m", 1, "w1", time.time(), LEASE)[0])
    store.finalize_batches(time.time())
    assert set(result_file_rows(store)) == {"output"}


def test_native_batches_get_noresult_file_rows(store: port.JobStore) -> None:
    make_batch(store, 1)
    succeed(store, store.claim("m", 1, "w1", time.time(), LEASE)[0])
    store.finalize_batches(time.time())
    assert result_file_rows(store) == {}


def test_expiry_creates_the_error_file_once(store: port.JobStore) -> None:
    batch = make_batch(store, 2, window=0.01, dialect=Dialect.OPENAI)
    assert store.expire_batches(time.time() + LATER) == [batch.id]
    assert store.expire_batches(time.time() + LATER) == []
    assert store.finalize_batches(time.time()) == []
    assert set(result_file_rows(store)) == {"errors"}


def test_cancelled_openai_batch_gets_an_error_file(store: port.JobStore) -> None:
    batch = make_batch(store, 2, dialect=Dialect.OPENAI)
    store.cancel_batch(batch.id, "key_a", time.time())
    assert store.finalize_batches(time.time()) == [batch.id]
    assert store.finalize_batches(time.time()) == []
    assert set(result_file_rows(store)) == {"errors"}
