"""The retention sweep: purge expired results and files, and the upstream
jobs nothing needs any more (domain/retention.py), in small steps.

Every ``sweep_seconds`` a worker purges what is due, one bounded
``purge_step`` at a time, resting between steps for as long as the step took:
the purge holds the database at most half of the time, in transactions of a
few milliseconds, so claims and result writes never queue behind it for long.
Several workers may sweep at once; a row is only deleted once, and the loser
of a race finds nothing to do. After a sweep that removed anything, the store
makes the space reusable (``reclaim_space``: VACUUM on PostgreSQL).
"""

from __future__ import annotations

import asyncio
import logging
import time

from batchgate import config
from batchgate.store import port

log = logging.getLogger("batchgate.retention")

_MIN_REST_SECONDS = 0.005


class RetentionSweep:
    def __init__(self, store: port.RetentionStore, settings: config.RetentionSettings) -> None:
        self.store = store
        self.settings = settings

    async def run(self) -> None:
        """Sweep forever (cancelled when the worker stops)."""
        while True:
            await asyncio.sleep(self.settings.sweep_seconds)
            try:
                await self.sweep()
            except Exception:
                log.exception("retention sweep failed; trying again at the next sweep")

    async def sweep(self) -> int:
        """Purge everything due now, step by step; returns what was removed."""
        now = time.time()
        removed = 0
        while True:
            started = time.monotonic()
            step = await asyncio.to_thread(self.store.purge_step, now, self.settings.chunk_rows)
            if not step:
                break
            removed += step
            await asyncio.sleep(max(time.monotonic() - started, _MIN_REST_SECONDS))
        if removed:
            await asyncio.to_thread(self.store.reclaim_space)
            log.info("retention sweep removed %d expired rows, chunks, jobs and objects", removed)
        return removed
