"""The worker registry contract (port.WorkerRegistry): one heartbeat row per
worker, refreshed in place; stopped workers fold into one retired row that
keeps their counts."""

from __future__ import annotations

import time

from batchgate.domain import workers
from batchgate.store import port


def _heartbeat(worker_id: str, seen: float, **fields: object) -> workers.WorkerHeartbeat:
    values: dict[str, object] = {
        "id": worker_id,
        "host": "host-a",
        "pid": 42,
        "models": ("m",),
        "started_at": seen - 10,
        "last_seen_at": seen,
    }
    values.update(fields)
    return workers.WorkerHeartbeat(**values)  # type: ignore[arg-type]


def test_a_worker_heartbeat_is_one_row_refreshed_in_place(store: port.JobStore) -> None:
    now = time.time()
    store.record_worker(_heartbeat("w1", now - 5, stats={"a": 1}))
    store.record_worker(_heartbeat("w1", now, stats={"a": 2}))
    (only,) = store.list_workers()
    assert (only.last_seen_at, only.stats, only.models) == (now, {"a": 2}, ("m",))


def test_workers_seen_since_leave_out_the_silent_ones(store: port.JobStore) -> None:
    now = time.time()
    store.record_worker(_heartbeat("old", now - 600))
    store.record_worker(_heartbeat("new", now, stopped_at=None))
    assert [w.id for w in store.list_workers()] == ["new", "old"]
    assert [w.id for w in store.list_workers(seen_since=now - 60)] == ["new"]


def test_a_stopped_worker_is_not_alive_however_recent(store: port.JobStore) -> None:
    now = time.time()
    store.record_worker(_heartbeat("w1", now, stopped_at=now))
    (stopped,) = store.list_workers()
    assert not stopped.is_alive(now, 60)


def _report(succeeded: float) -> dict[str, object]:
    return {
        "batchgate_attempts": {
            "type": "counter",
            "help": "h",
            "samples": [["batchgate_attempts_total", {"outcome": "succeeded"}, succeeded]],
        }
    }


def _succeeded(worker: workers.WorkerHeartbeat) -> float:
    assert worker.stats is not None
    ((_name, _labels, value),) = worker.stats["batchgate_attempts"]["samples"]
    return float(value)


def test_stopped_workers_fold_into_one_retired_row_keeping_their_counts(
    store: port.JobStore,
) -> None:
    now = time.time()
    for i, seen in enumerate((now - 500, now - 400, now - 300)):
        store.record_worker(_heartbeat(f"gone{i}", seen, stopped_at=seen, stats=_report(i + 1)))
    store.record_worker(_heartbeat("live", now, stats=_report(10)))
    store.record_worker(_heartbeat("just-stopped", now - 1, stopped_at=now - 1, stats=_report(5)))
    assert store.retire_workers(now - 60) == 3
    assert store.retire_workers(now - 60) == 0
    found = {worker.id: worker for worker in store.list_workers()}
    assert set(found) == {"live", "just-stopped", workers.RETIRED_ID}
    assert _succeeded(found[workers.RETIRED_ID]) == 1 + 2 + 3
    assert not found[workers.RETIRED_ID].is_alive(now, 60)
    # A later restart folds into the same row.
    assert store.retire_workers(now + 60) == 1
    found = {worker.id: worker for worker in store.list_workers()}
    assert set(found) == {"live", workers.RETIRED_ID}
    assert _succeeded(found[workers.RETIRED_ID]) == 1 + 2 + 3 + 5
