"""The group-commit writer: what runs after a write, and when.

A retried row is claimable again the moment its write commits, so the
after-write hook (metrics, the request's log line) must run before the writer
awaits anything else; otherwise the next attempt's "claimed" can reach the log
before this attempt's "retried"."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from batchgate import testing
from batchgate.domain import batch as bm
from batchgate.domain.states import RequestState
from batchgate.worker.writer import OutcomeWriter
from tests.unit import worker_kit as kit
from tests.unit.worker_kit import MODEL


class _Recording(testing.MemoryJobStore):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []

    def finalize_batches(self, now: float, batch_ids: Iterable[str] | None = None) -> list[str]:
        self.events.append("finalize")
        return super().finalize_batches(now, batch_ids)


def _requeued(request: bm.ClaimedRequest) -> bm.Outcome:
    """The write of a retried attempt: the row goes back to the queue, due now."""
    return bm.Outcome(
        request_id=request.id,
        attempt=request.attempt,
        worker_id="w1",
        state=RequestState.QUEUED,
        not_before=time.time(),
    )


async def test_the_after_write_hook_runs_before_the_writer_awaits_finalize() -> None:
    store = _Recording()
    kit.submit(store, ["x"])
    [request] = store.claim(MODEL, 1, "w1", time.time(), 60.0)
    writer = OutcomeWriter(store)
    runner = asyncio.create_task(writer.run())
    applied = await writer.write(
        _requeued(request), request.batch_id, then=lambda ok: store.events.append(f"hook {ok}")
    )
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    assert applied is True
    assert store.events == ["hook True", "finalize"]


async def test_a_failing_hook_does_not_stop_the_write_or_the_next_one() -> None:
    store = _Recording()
    kit.submit(store, ["x", "y"])
    requests = store.claim(MODEL, 2, "w1", time.time(), 60.0)
    writer = OutcomeWriter(store)
    runner = asyncio.create_task(writer.run())

    def broken(_ok: bool) -> None:
        raise RuntimeError("hook bug")

    results = []
    for request in requests:
        results.append(await writer.write(_requeued(request), request.batch_id, then=broken))
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    assert results == [True, True]
