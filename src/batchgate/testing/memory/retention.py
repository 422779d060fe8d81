"""Retention in memory (port.RetentionStore)."""

from __future__ import annotations

from batchgate.domain import files as file_model
from batchgate.domain import result_files, retention
from batchgate.testing.memory.tables import MemoryTables


class MemoryRetention(MemoryTables):
    """port.RetentionStore over the dictionaries."""

    def purge_step(self, now: float, max_rows: int) -> int:
        with self._lock:
            due = [
                row
                for row in self._batches.values()
                if row.purged_at is None
                and row.batch.results_expire_at is not None
                and row.batch.results_expire_at <= now
            ]
            if due:
                row = min(due, key=lambda item: item.batch.results_expire_at or 0.0)
                if row.frozen is None:
                    row.frozen = self._tally(row)
                doomed, row.request_ids = row.request_ids[:max_rows], row.request_ids[max_rows:]
                for request_id in doomed:
                    del self._requests[request_id]
                if len(doomed) == max_rows:
                    return len(doomed)
                row.purged_at = now
                self._purge_batch_deliveries(row.batch.id)
                for kind in result_files.RESULT_KINDS:
                    result_file = self._files.get(result_files.file_id(row.batch.id, kind))
                    if result_file is not None:
                        result_file.purged_at = now
                return len(doomed) + 1
            files = [
                row
                for row in self._files.values()
                if row.purged_at is None
                and row.record.kind is file_model.FileKind.STORED
                and row.record.is_expired(now)
            ]
            if not files:
                return self._purge_jobs(now, max_rows)
            expired = min(files, key=lambda item: item.record.expires_at or 0.0)
            removed = len(expired.chunks)
            expired.chunks = []
            expired.purged_at = now
            return removed + 1

    def _purge_jobs(self, now: float, max_rows: int) -> int:
        named = {row.upstream_job_id for row in self._requests.values()}
        doomed = sorted(
            (
                job
                for job in self._jobs.values()
                if retention.job_purgeable(job, now, job.id in named)
            ),
            key=lambda job: (job.ended_at or 0.0, job.id),
        )[:max_rows]
        for job in doomed:
            del self._jobs[job.id]
        return len(doomed)

    def reclaim_space(self) -> None:
        """Nothing to reclaim: purged rows are gone from the dictionaries."""
