"""Retention: purging expired results and files, a small piece at a time.

Each step is a few short transactions that touch only rows nothing else
writes any more (an ended batch's requests, an expired file's chunks), found
through ``ix_batches_purge`` / ``ix_files_purge``. On SQLite a step holds the
write lock for a few milliseconds, so a claim waits at most that long; on
PostgreSQL the deleted rows are ones no claim ever locks.

SQLite reuses the pages a purge frees (they go to the file's freelist, and new
rows are written into them), so a database in steady state stops growing at
its high-water mark instead of shrinking and growing again; see docs/retention.md.
PostgreSQL reuses a deleted row's space only once VACUUM has passed over it;
``reclaim_space`` runs one right after a purge instead of waiting for
autovacuum, which on a busy table comes too late to stop the growth.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from batchgate.domain import files as file_model
from batchgate.domain import result_files, retention
from batchgate.domain import upstream_jobs as uj
from batchgate.store import sql_webhooks, tables
from batchgate.store.sql_common import (
    FC,
    B,
    F,
    R,
    SqlBase,
    _count_tally,
    _dump_tally,
)

# An uploaded file's content is in 1 MiB chunks; this many go per transaction.
_CHUNKS_PER_STEP = 4
# What a purge deletes from or updates, and so what VACUUM should pass over.
_PURGED_TABLES = ("requests", "file_chunks", "batches", "files", "upstream_jobs")

J = tables.upstream_jobs


def _job_purgeable(now: float) -> Any:
    """domain/retention.py ``job_purgeable`` as a condition on a job row: done,
    ended long enough ago, and named by no request row (``ix_requests_upstream_job``)."""
    named = sa.select(R.c.id).where(R.c.upstream_job_id == J.c.id).exists()
    return (
        (J.c.state == uj.JobState.ENDED.value)
        & J.c.downloaded_at.is_not(None)
        & (J.c.ended_at <= now - retention.JOB_KEEP_SECONDS)
        & ~named
    )


class Retention(SqlBase):
    def purge_step(self, now: float, max_rows: int) -> int:
        """One bounded piece of the purge: up to ``max_rows`` request rows of
        the first batch whose results are due, else a few chunks of the first
        file that is, else up to ``max_rows`` upstream jobs nothing needs any
        more. Returns what it removed (rows, chunks, jobs, and objects it
        finished); 0 when nothing is due."""
        with self._read() as conn:
            batch = conn.execute(
                sa.select(B.c.id, B.c.frozen_tally, B.c.deleted_at)
                .where(B.c.purged_at.is_(None), B.c.results_expire_at <= now)
                .order_by(B.c.results_expire_at)
                .limit(1)
            ).first()
            file_id = None
            if batch is None:
                file_id = conn.execute(
                    sa.select(F.c.id)
                    .where(
                        F.c.purged_at.is_(None),
                        F.c.expires_at <= now,
                        F.c.kind == file_model.FileKind.STORED.value,
                    )
                    .order_by(F.c.expires_at)
                    .limit(1)
                ).scalar()
        if batch is not None:
            return self._purge_batch_rows(batch, now, max_rows)
        if file_id is not None:
            return self._purge_file_chunks(file_id, now)
        return self._purge_jobs(now, max_rows)

    def _purge_batch_rows(self, batch: Any, now: float, max_rows: int) -> int:
        if batch.frozen_tally is None and batch.deleted_at is None:
            # Keep the counts and usage the batch object reports. The rows of
            # an ended batch no longer change, so counting outside the write
            # transaction is safe and keeps that transaction short.
            with self._read() as conn:
                tally = _dump_tally(_count_tally(conn, batch.id))
            with self._write() as conn:
                conn.execute(
                    B.update()
                    .where(B.c.id == batch.id, B.c.frozen_tally.is_(None))
                    .values(frozen_tally=tally)
                )
        doomed = (
            sa.select(R.c.id)
            .where(R.c.batch_id == batch.id)
            .order_by(R.c.id)
            .limit(max_rows)
            .scalar_subquery()
        )
        with self._write() as conn:
            removed = int(conn.execute(R.delete().where(R.c.id.in_(doomed))).rowcount)
            if removed == max_rows:
                return removed
            conn.execute(B.update().where(B.c.id == batch.id).values(purged_at=now))
            sql_webhooks.purge_batch_deliveries(conn, batch.id)
            result_ids = [result_files.file_id(batch.id, k) for k in result_files.RESULT_KINDS]
            conn.execute(
                F.update()
                .where(F.c.id.in_(result_ids), F.c.purged_at.is_(None))
                .values(purged_at=now)
            )
        return removed + 1

    def _purge_file_chunks(self, file_id: str, now: float) -> int:
        doomed = (
            sa.select(FC.c.seq)
            .where(FC.c.file_id == file_id)
            .order_by(FC.c.seq)
            .limit(_CHUNKS_PER_STEP)
            .scalar_subquery()
        )
        with self._write() as conn:
            removed = int(
                conn.execute(
                    FC.delete().where(FC.c.file_id == file_id, FC.c.seq.in_(doomed))
                ).rowcount
            )
            if removed == _CHUNKS_PER_STEP:
                return removed
            conn.execute(F.update().where(F.c.id == file_id).values(purged_at=now))
        return removed + 1

    def _purge_jobs(self, now: float, max_rows: int) -> int:
        """Upstream jobs done long enough ago whose rows are all gone (their
        batches purged, or re-queued into later jobs). No write ever names
        such a job again (a row takes only a new job's id), so the rows found
        by the read are still purgeable when deleted."""
        with self._read() as conn:
            ids = list(
                conn.execute(
                    sa.select(J.c.id)
                    .where(_job_purgeable(now))
                    .order_by(J.c.ended_at, J.c.id)
                    .limit(max_rows)
                ).scalars()
            )
        if not ids:
            return 0
        with self._write() as conn:
            return int(
                conn.execute(J.delete().where(J.c.id.in_(ids), _job_purgeable(now))).rowcount
            )

    def reclaim_space(self) -> None:
        """Make the space purged rows held reusable now. PostgreSQL: a plain
        VACUUM of the purged tables (it takes no lock that claims or writes
        wait on; SKIP_LOCKED passes over a table another worker is vacuuming).
        SQLite: nothing to do, its freed pages are reused already."""
        if not self.is_postgres:
            return
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for table in _PURGED_TABLES:
                conn.exec_driver_sql(f"VACUUM (SKIP_LOCKED) {table}")
