"""Building blocks the contract tests share: batches and outcomes, through the port."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from batchgate.domain import batch as bm
from batchgate.domain import failures, ids
from batchgate.domain import upstream_jobs as uj
from batchgate.domain.files import FilePurpose, FileRecord
from batchgate.domain.states import BatchStatus, Dialect, RequestState
from batchgate.store import port

LEASE = 30.0
ERROR = failures.RequestError(failures.ErrorType.API, "boom")
LATER = 1.0  # seconds: past every short lease and window, without sleeping


def taken_concurrently(take: Callable[[str], Iterable[int]], takers: int = 4) -> list[int]:
    """Every id that ``takers`` threads took, each calling ``take(name)``
    (names w0, w1, ...) until it takes nothing: a row two of them took
    appears twice."""
    seen: list[int] = []
    lock = threading.Lock()

    def taker(name: str) -> None:
        while got := list(take(name)):
            with lock:
                seen.extend(got)

    threads = [threading.Thread(target=taker, args=(f"w{i}",)) for i in range(takers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return seen


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


KIND = "openai_batch"


def new_job(
    model: str = "m", worker: str = "w1", now: float | None = None, kind: str = KIND
) -> uj.UpstreamJob:
    """A new upstream job of ``model``, assembling, leased to ``worker``."""
    at = time.time() if now is None else now
    return uj.UpstreamJob(
        id=ids.new_upstream_job_id(),
        model=model,
        kind=kind,
        endpoint="/v1/chat/completions",
        state=uj.JobState.ASSEMBLING,
        created_at=at,
        lease_owner=worker,
        lease_expires_at=at + LEASE,
    )


def seed_job(
    store: port.JobStore,
    model: str,
    n: int,
    *,
    submitted_at: float,
    ended_at: float | None = None,
    end_status: uj.EndStatus = uj.EndStatus.COMPLETED,
    upstream_batch_id: str = "batch_upstream",
    worker: str = "seed",
) -> uj.UpstreamJob:
    """An upstream job of ``model`` holding up to ``n`` of its queued rows,
    moved through the port as the driver moves one: submitted at
    ``submitted_at`` and, given ``ended_at``, ended ``end_status`` then (its
    results not read yet: the rows stay held)."""
    now = time.time()
    job = new_job(model, worker, now)
    assert store.assemble_job(job, n, now), f"no queued {model!r} rows to put in a job"
    steps = [
        uj.JobUpdate(
            state=uj.JobState.SUBMITTED,
            upstream_batch_id=upstream_batch_id,
            submitted_at=submitted_at,
        )
    ]
    if ended_at is not None:
        steps.append(
            uj.JobUpdate(state=uj.JobState.ENDED, end_status=end_status, ended_at=ended_at)
        )
    moved: uj.UpstreamJob | None = job
    for step in steps:
        moved = store.update_job(job.id, worker, step, now, LEASE)
        assert moved is not None
    assert moved is not None
    return moved
