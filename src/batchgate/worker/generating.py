"""Marks requests generating once their backend call starts, so the dashboard
can tell a claimed request (leased, waiting for a call slot) from one the
backend is working on. Marks made while a write is in flight go out together
in the next one: one small write per burst, not one per request."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

log = logging.getLogger("batchgate.worker")


class MarkingStore(Protocol):
    def mark_generating(self, worker_id: str, request_ids: list[int], now: float) -> None: ...


class GeneratingMarks:
    def __init__(self, store: MarkingStore, worker_id: str) -> None:
        self.store = store
        self.worker_id = worker_id
        self._pending: set[int] = set()
        self._added = asyncio.Event()

    def add(self, request_id: int) -> None:
        self._pending.add(request_id)
        self._added.set()

    async def run(self) -> None:
        while True:
            await self._added.wait()
            self._added.clear()
            await self.flush()

    async def flush(self) -> None:
        marked, self._pending = sorted(self._pending), set()
        if not marked:
            return
        try:
            await asyncio.to_thread(self.store.mark_generating, self.worker_id, marked, time.time())
        except Exception:  # only the dashboard's label depends on it
            log.exception("marking %d requests generating failed", len(marked))
