"""Group commit for outcomes: many finished attempts, one transaction.

Writing each result in its own transaction would cap a SQLite-backed worker at
a few hundred results per second (one fsync-bound commit each); collecting
what finished in the last few milliseconds keeps the store off the hot path.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from typing import Protocol

from batchgate.domain import batch as batch_model
from batchgate.store import port
from batchgate.worker import trace

log = logging.getLogger("batchgate.worker")

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
        self._queue: asyncio.Queue[tuple[batch_model.Outcome, str, asyncio.Future[bool]]] = (
            asyncio.Queue()
        )
        self._on_written = on_written

    async def write(
        self,
        outcome: batch_model.Outcome,
        batch_id: str,
        then: Callable[[bool], None] | None = None,
    ) -> bool:
        """Queue one outcome; resolves to whether the fenced write applied.

        ``then(applied)`` runs once the write is done even if the caller was
        cancelled meanwhile (a heartbeat cancels the task of a request that
        just left its leases, which is what a successful write does)."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if then is not None:
            future.add_done_callback(functools.partial(_after_write, then))
        await self._queue.put((outcome, batch_id, future))
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

    async def _flush(self, first: tuple[batch_model.Outcome, str, asyncio.Future[bool]]) -> None:
        group = [first]
        while not self._queue.empty() and len(group) < MAX_GROUP:
            group.append(self._queue.get_nowait())
        outcomes = [item[0] for item in group]
        batch_ids = {batch_id for _, batch_id, _ in group}
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                applied = await asyncio.to_thread(self.store.record_outcomes, outcomes, time.time())
                break
            except Exception as exc:  # deadlock, lost connection: the store will be back
                if attempt == WRITE_ATTEMPTS:
                    # Give up on this group: the requests stay leased to us,
                    # their leases lapse, and another attempt runs later.
                    log.exception("could not record %d outcomes", len(group))
                    for _, _, future in group:
                        if not future.done():
                            future.set_exception(exc)
                    return
                await asyncio.sleep(0.05 * 2**attempt)
        try:
            ended = await asyncio.to_thread(self.store.finalize_batches, time.time(), batch_ids)
            trace.batches_ended(ended, "ended")
        except Exception:  # the sweep finalizes these batches later
            log.exception("finalize after write failed")
        for (_, _, future), ok in zip(group, applied, strict=True):
            if not future.done():
                future.set_result(ok)
        if self._on_written is not None:
            self._on_written(batch_ids)


def _after_write(then: Callable[[bool], None], future: asyncio.Future[bool]) -> None:
    if future.cancelled() or future.exception() is not None:
        return
    try:
        then(future.result())
    except Exception:  # bookkeeping after a write must never break the writer
        log.exception("after-write hook failed")
