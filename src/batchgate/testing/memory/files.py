"""Files in memory (port.FileStore)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator

from batchgate.domain import files as file_model
from batchgate.domain import pages, quotas
from batchgate.testing.memory.tables import MemoryTables, file_order


class MemoryFiles(MemoryTables):
    """port.FileStore in dictionaries."""

    def create_file(
        self,
        record: file_model.FileRecord,
        chunks: Iterable[bytes],
        admission: quotas.Admission | None = None,
    ) -> file_model.FileRecord:
        with self._lock:
            return self._insert_file(record, chunks, admission)

    def get_file(self, file_id: str, owner: str) -> file_model.FileRecord | None:
        with self._lock:
            row = self._files.get(file_id)
            if row is None or row.deleted_at is not None or row.record.owner != owner:
                return None
            return row.record

    def list_files(
        self,
        owner: str,
        *,
        purpose: str | None,
        limit: int,
        after: str | None,
        ascending: bool,
        now: float | None = None,
    ) -> tuple[list[file_model.FileRecord], bool]:
        with self._lock:
            rows = [
                row.record
                for row in self._files.values()
                if row.record.owner == owner
                and row.deleted_at is None
                and (not purpose or row.record.purpose == purpose)
                and (now is None or not row.record.is_expired(now))
            ]
            pivot = self._files.get(after) if after else None
        if pivot is not None and pivot.record.owner == owner:
            mark = file_order(pivot.record)
            rows = [
                r for r in rows if (file_order(r) > mark if ascending else file_order(r) < mark)
            ]
        rows.sort(key=file_order, reverse=not ascending)
        return pages.page(rows, limit)

    def iter_file_chunks(self, file_id: str) -> Iterator[bytes]:
        with self._lock:
            row = self._files.get(file_id)
            chunks = [] if row is None else list(row.chunks)
        yield from chunks

    def delete_file(self, file_id: str, owner: str, now: float) -> bool:
        with self._lock:
            row = self._files.get(file_id)
            if row is None or row.deleted_at is not None or row.record.owner != owner:
                return False
            row.deleted_at = now
            row.chunks = []
            return True

    def set_file_bytes(self, file_id: str, size: int) -> None:
        with self._lock:
            row = self._files.get(file_id)
            if row is not None:
                row.record = dataclasses.replace(
                    row.record, bytes=size, status=file_model.FileStatus.PROCESSED
                )
