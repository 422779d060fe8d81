"""A worker on the in-memory store with scripted backends: fast, no I/O.

Intervals are milliseconds so a test's whole life is a fraction of a second;
nothing here asserts on time, only on what the worker did.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from batchgate import composition, config, testing
from batchgate.canonical import chat
from batchgate.domain import batch as bm
from batchgate.domain.states import BatchStatus, RequestState
from batchgate.worker.loop import Worker
from tests.contract import builders

MODEL = "m"


def settings(*, models: dict[str, dict[str, Any]] | None = None, **worker: Any) -> config.Settings:
    """Settings for one model ``m`` (or ``models``), with a worker that
    polls, sweeps and heartbeats every few milliseconds and retries at once."""
    timing: dict[str, Any] = {
        "poll_seconds": 0.005,
        "sweep_seconds": 0.01,
        "heartbeat_seconds": 0.01,
        "lease_seconds": 30.0,
        "backoff_base_seconds": 0.0,
        "backoff_max_seconds": 0.0,
        "drain_seconds": 5.0,
    }
    entries = models or {MODEL: {}}
    return config.Settings(
        worker=config.WorkerSettings(**{**timing, **worker}),
        metrics=config.MetricsSettings(enabled=False),
        models={
            name: config.ModelConfig(name=name, backend="fake", **extra)
            for name, extra in entries.items()
        },
    )


def params(text: str = "hi", model: str = MODEL, **extra: Any) -> str:
    request = {
        "model": model,
        "max_tokens": 8,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }
    return chat.ChatRequest.model_validate(request).model_dump_json(exclude_none=True)


def submit(
    store: testing.MemoryJobStore,
    texts: list[str],
    *,
    owner: str = "key_a",
    model: str = MODEL,
    created_at: float | None = None,
    batch_id: str | None = None,
    **extra: Any,
) -> bm.Batch:
    """A stored in-progress batch, one request per text (custom_id = the text)."""
    batch = builders.new_batch(len(texts), owner=owner, created_at=created_at, batch_id=batch_id)
    store.create_batch(
        batch, [bm.NewRequest(text, model, params(text, model, **extra)) for text in texts]
    )
    return batch


def results(store: testing.MemoryJobStore, batch: bm.Batch) -> dict[str, bm.ResultRow]:
    return {row.custom_id: row for row in store.iter_results(batch.id)}


def status(store: testing.MemoryJobStore, batch: bm.Batch) -> BatchStatus:
    found = store.get_batch(batch.id)
    assert found is not None
    return found.status


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until ``check()`` holds; fail after ``timeout`` (a hang guard, not
    a measurement)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("the worker never got there")
        await asyncio.sleep(0.002)


@contextlib.asynccontextmanager
async def running(worker: Worker) -> AsyncIterator[Worker]:
    """The worker running for the block; drained (and awaited) after it."""
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        worker.drain()
        await asyncio.wait_for(task, 10)


def worker_for(
    store: testing.MemoryJobStore, backends: dict[str, testing.FakeBackend], **worker: Any
) -> Worker:
    models = {name: {} for name in backends}
    caps = worker.pop("models", None)
    built = settings(models=caps or models, **worker)
    # The production wiring, so a test's worker reads the sections the server's does.
    return composition.build_worker(built, store, dict(backends))


def ended(store: testing.MemoryJobStore, batch: bm.Batch) -> Callable[[], bool]:
    return lambda: status(store, batch).is_ended


def state_of(store: testing.MemoryJobStore, batch: bm.Batch, custom_id: str) -> RequestState:
    return results(store, batch)[custom_id].state
