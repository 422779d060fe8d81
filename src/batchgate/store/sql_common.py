"""What the SQL store's parts share: table aliases, JSON helpers,
transactions, and the writes more than one part makes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import orjson
import sqlalchemy as sa

from batchgate.domain import result_files
from batchgate.domain.states import (
    RequestState,
)
from batchgate.store import tables

_INSERT_CHUNK = 2000  # rows per executemany: bounded memory for 50k-row batches
_RESULT_PAGE = 1000  # rows per page when streaming results
_FILE_CHUNK = 1024 * 1024  # bytes per stored file chunk

R = tables.requests
B = tables.batches
F = tables.files
FC = tables.file_chunks
K = tables.api_keys

_OPEN = [RequestState.QUEUED.value, RequestState.RUNNING.value]
_STATES = {state.value: state for state in RequestState}


def _dumps(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _loads(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


class SqlBase:
    """An engine and its two kinds of transaction."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.is_postgres = engine.dialect.name == "postgresql"

    def close(self) -> None:
        self.engine.dispose()

    # -- transactions ---------------------------------------------------------
    @contextlib.contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        with self.engine.connect().execution_options(write=True) as conn, conn.begin():
            yield conn

    @contextlib.contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def _soft_delete(
        self, table: sa.Table, object_id: str, owner: str, now: float, purge: sa.Delete
    ) -> bool:
        """Mark the owner's object deleted (its row stays, so its id is never
        reused) and drop its bulk content with ``purge``, in one transaction."""
        with self._write() as conn:
            result = conn.execute(
                table.update()
                .where(
                    table.c.id == object_id, table.c.owner == owner, table.c.deleted_at.is_(None)
                )
                .values(deleted_at=now)
            )
            if result.rowcount:
                conn.execute(purge)
        return bool(result.rowcount)


def _add_result_files(conn: sa.Connection, batch_ids: Sequence[str], now: float) -> None:
    """Create the output/error file rows of batches that just ended, in the
    transaction that ended them (see domain/result_files.py). Their size is
    measured later, on first description (``set_file_bytes``)."""
    if not batch_ids:
        return
    rows = conn.execute(
        sa.select(B.c.id, B.c.owner, R.c.state)
        .distinct()
        .join(R, R.c.batch_id == B.c.id)
        .where(
            B.c.id.in_(list(batch_ids)),
            B.c.dialect.in_([d.value for d in result_files.DIALECTS]),
        )
    ).all()
    wanted = {(row.id, result_files.kind_of(RequestState(row.state))): row.owner for row in rows}
    if not wanted:
        return
    conn.execute(
        F.insert(),
        [
            {
                "id": result_files.file_id(batch_id, kind),
                "owner": owner,
                "purpose": result_files.PURPOSE,
                "filename": result_files.filename(batch_id, kind),
                "bytes": 0,
                "status": "uploaded",
                "created_at": now,
                "batch_id": batch_id,
                "kind": kind.value,
            }
            for (batch_id, kind), owner in sorted(wanted.items())
        ],
    )


def _open_requests_locked(batch_id: str) -> Any:
    """The batch's unfinished requests, row-locked in id order (the order every
    multi-row write here uses, so that none deadlocks another on PostgreSQL)."""
    return (
        sa.select(R.c.id)
        .where(R.c.batch_id == batch_id, R.c.state.in_(_OPEN))
        .order_by(R.c.id)
        .with_for_update()
        .scalar_subquery()
    )
