"""The file contract (port.FileStore): content round-trips in chunks, and a
result file's measured size is recorded."""

from __future__ import annotations

import time

from batchgate.domain import files as file_model
from batchgate.domain.states import Dialect
from batchgate.store import port
from tests.contract.builders import LEASE, make_batch, result_file_rows, succeed


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


def test_set_file_bytes_records_a_measured_size(store: port.JobStore) -> None:
    make_batch(store, 1, dialect=Dialect.OPENAI)
    succeed(store, store.claim("m", 1, "w1", time.time(), LEASE)[0])
    store.finalize_batches(time.time())
    output = result_file_rows(store)["output"]
    store.set_file_bytes(output.id, 1234)
    measured = store.get_file(output.id, "key_a")
    assert measured is not None and (measured.bytes, measured.status) == (1234, "processed")
