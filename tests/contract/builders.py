"""Building blocks the contract tests share: batches and outcomes, through the port."""

from __future__ import annotations

import time

from batchgate.domain import batch as bm
from batchgate.domain import failures, ids
from batchgate.domain.files import FilePurpose, FileRecord
from batchgate.domain.states import BatchStatus, Dialect, RequestState
from batchgate.store import port

LEASE = 30.0
ERROR = failures.RequestError(failures.ErrorType.API, "boom")
LATER = 1.0  # seconds: past every short lease and window, without sleeping


def new_batch(
    n: int,
    *,
    owner: str = "key_a",
    window: float = 3600.0,
    created_at: float | None = None,
    dialect: Dialect = Dialect.NATIVE,
    results_ttl: int | None = None,
    batch_id: str | None = None,
) -> bm.Batch:
    """A batch record of ``n`` requests, not stored yet."""
    now = created_at if created_at is not None else time.time()
    return bm.Batch(
        id=batch_id or ids.new_batch_id(dialect),
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
        results_ttl=results_ttl,
    )


def make_batch(
    store: port.JobStore,
    n: int,
    *,
    owner: str = "key_a",
    model: str = "m",
    window: float = 3600.0,
    created_at: float | None = None,
    dialect: Dialect = Dialect.NATIVE,
    results_ttl: int | None = None,
) -> bm.Batch:
    """A stored batch of ``n`` queued requests for ``model``."""
    batch = new_batch(
        n,
        owner=owner,
        window=window,
        created_at=created_at,
        dialect=dialect,
        results_ttl=results_ttl,
    )
    store.create_batch(
        batch, [bm.NewRequest(custom_id=f"r{i}", model=model, params="{}") for i in range(n)]
    )
    return batch


def succeed(store: port.JobStore, claimed: bm.ClaimedRequest, worker: str = "w1") -> bool:
    return store.record_outcomes(
        [
            bm.Outcome(
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


def result_file_rows(store: port.JobStore, owner: str = "key_a") -> dict[str, FileRecord]:
    """The owner's result-file rows (output, error), by kind."""
    records, _ = store.list_files(
        owner, purpose=FilePurpose.BATCH_OUTPUT, limit=100, after=None, ascending=True
    )
    return {record.kind: record for record in records}
