"""Group commit for outcomes: many finished attempts, one transaction.

Writing each result in its own transaction would cap a SQLite-backed worker at
a few hundred results per second (one fsync-bound commit each); collecting
what finished in the last few milliseconds keeps the store off the hot path.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Protocol

from batchgate.domain import batch as batch_model
from batchgate.store import port
from batchgate.worker import trace

log = logging.getLogger("batchgate.worker")

AfterWrite = Callable[[bool], None]

FLUSH_SECONDS = 0.01
WRITE_ATTEMPTS = 5
MAX_GROUP = 500


class WriterStore(port.QueueStore, port.BatchSweeps, Protocol):
    """Outcome writes, and finalizing the batches they may have ended."""


class OutcomeWriter:
    def __init__(
        self, store: WriterStore, on_written: Callable[[set[str]], None] | None = None
    ) -> None:
        self.store = store
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._on_written = on_written

    async def write(
        self,
        outcome: batch_model.Outcome,
        batch_id: str,
        then: AfterWrite | None = None,
    ) -> bool:
        """Queue one outcome; resolves to whether the fenced write applied.

        ``then(applied)`` runs once the write is done even if the caller was
        cancelled meanwhile (a heartbeat cancels the task of a request that
        just left its leases, which is what a successful write does). It runs
        inside the flush, straight after the commit and before anything else
        is awaited, so what it logs comes before the next claim of a row the
        write re-queued."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(outcome, batch_id, future, then))
        return await asyncio.shield(future)

    async def run(self) -> None:
        """Flush forever (until cancelled, after which pending items are flushed)."""
        try:
            while True:
                first = await self._queue.get()
                await asyncio.sleep(FLUSH_SECONDS)
                await self._flush(first)
        except asyncio.CancelledError:
            while not self._queue.empty():
                await self._flush(self._queue.get_nowait())
            raise

    async def _flush(self, first: _Pending) -> None:
        group = [first]
        while not self._queue.empty() and len(group) < MAX_GROUP:
            group.append(self._queue.get_nowait())
        outcomes = [item.outcome for item in group]
        batch_ids = {item.batch_id for item in group}
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                applied = await asyncio.to_thread(self.store.record_outcomes, outcomes, time.time())
                break
            except Exception as exc:  # deadlock, lost connection: the store will be back
                if attempt == WRITE_ATTEMPTS:
                    # Give up on this group: the requests stay leased to us,
                    # their leases lapse, and another attempt runs later.
                    log.exception("could not record %d outcomes", len(group))
                    for item in group:
                        if not item.future.done():
                            item.future.set_exception(exc)
                    return
                await asyncio.sleep(0.05 * 2**attempt)
        for item, ok in zip(group, applied, strict=True):
            _after_write(item.then, ok)
        try:
            ended = await asyncio.to_thread(self.store.finalize_batches, time.time(), batch_ids)
            trace.batches_ended(ended, "ended")
        except Exception:  # the sweep finalizes these batches later
            log.exception("finalize after write failed")
        for item, ok in zip(group, applied, strict=True):
            if not item.future.done():
                item.future.set_result(ok)
        if self._on_written is not None:
            self._on_written(batch_ids)


@dataclasses.dataclass(frozen=True, slots=True)
class _Pending:
    outcome: batch_model.Outcome
    batch_id: str
    future: asyncio.Future[bool]
    then: AfterWrite | None


def _after_write(then: AfterWrite | None, applied: bool) -> None:
    if then is None:
        return
    try:
        then(applied)
    except Exception:  # bookkeeping after a write must never break the writer
        log.exception("after-write hook failed")
