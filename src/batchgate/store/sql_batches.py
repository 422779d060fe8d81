"""Batches: create, read, list, cancel, delete, tally and stream results."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import orjson
import sqlalchemy as sa

from batchgate.domain import batch as batch_model
from batchgate.domain.counts import StateTally
from batchgate.domain.states import (
    CANCELLABLE_BATCH_STATUSES,
    BatchStatus,
    Dialect,
    RequestState,
)
from batchgate.store.sql_common import (
    _INSERT_CHUNK,
    _RESULT_PAGE,
    _STATES,
    B,
    R,
    SqlBase,
    _dumps,
    _loads,
    _open_requests_locked,
)


class Batches(SqlBase):
    """Batch rows and the read side of their requests."""

    # -- batches --------------------------------------------------------------
    def create_batch(
        self, batch: batch_model.Batch, requests: Iterable[batch_model.NewRequest]
    ) -> None:
        with self._write() as conn:
            conn.execute(B.insert().values(**self._batch_values(batch)))
            rows: list[dict[str, Any]] = []
            for index, request in enumerate(requests):
                terminal = request.state.is_terminal
                rows.append(
                    {
                        "batch_id": batch.id,
                        "idx": index,
                        "custom_id": request.custom_id,
                        "model": request.model,
                        "params": request.params,
                        "state": request.state.value,
                        "error": _dumps(request.error),
                        "finished_at": batch.created_at if terminal else None,
                    }
                )
                if len(rows) >= _INSERT_CHUNK:
                    conn.execute(R.insert(), rows)
                    rows = []
            if rows:
                conn.execute(R.insert(), rows)

    def fail_batch(
        self, batch: batch_model.Batch, errors: list[dict[str, Any]], now: float
    ) -> None:
        """Store a batch that failed validation: no requests, only its errors."""
        with self._write() as conn:
            values = self._batch_values(batch)
            values.update(
                status=BatchStatus.FAILED.value,
                errors=_dumps(errors),
                failed_at=now,
                in_progress_at=None,
            )
            conn.execute(B.insert().values(**values))

    @staticmethod
    def _batch_values(batch: batch_model.Batch) -> dict[str, Any]:
        return {
            "id": batch.id,
            "owner": batch.owner,
            "dialect": batch.dialect.value,
            "endpoint": batch.endpoint,
            "input_file_id": batch.input_file_id,
            "completion_window": batch.completion_window,
            "metadata": _dumps(batch.metadata),
            "status": batch.status.value,
            "errors": _dumps(batch.errors),
            "total": batch.total,
            "created_at": batch.created_at,
            "expires_at": batch.expires_at,
            "in_progress_at": batch.in_progress_at,
        }

    def get_batch(self, batch_id: str, owner: str | None = None) -> batch_model.Batch | None:
        query = sa.select(B).where(B.c.id == batch_id, B.c.deleted_at.is_(None))
        if owner is not None:
            query = query.where(B.c.owner == owner)
        with self._read() as conn:
            row = conn.execute(query).mappings().first()
            if row is None:
                return None
            return self._batch(row, self._tally(conn, batch_id))

    def list_batches(
        self,
        owner: str,
        *,
        limit: int,
        after: str | None = None,
        before: str | None = None,
        dialects: Sequence[Dialect] | None = None,
    ) -> tuple[list[batch_model.Batch], bool]:
        """Newest first. ``after`` pages towards older batches (OpenAI's and
        Anthropic's ``after_id``); ``before`` towards newer ones."""
        query = sa.select(B).where(B.c.owner == owner, B.c.deleted_at.is_(None))
        if dialects:
            query = query.where(B.c.dialect.in_([d.value for d in dialects]))
        cursor = sa.tuple_(B.c.created_at, B.c.id)
        with self._read() as conn:
            for pivot_id, older in ((after, True), (before, False)):
                if not pivot_id:
                    continue
                pivot = conn.execute(
                    sa.select(B.c.created_at, B.c.id).where(B.c.id == pivot_id, B.c.owner == owner)
                ).first()
                if pivot is not None:
                    query = query.where(
                        cursor < sa.tuple_(*pivot) if older else cursor > sa.tuple_(*pivot)
                    )
            if before and not after:
                # Walk upwards from the pivot, then present newest first.
                query = query.order_by(B.c.created_at.asc(), B.c.id.asc())
            else:
                query = query.order_by(B.c.created_at.desc(), B.c.id.desc())
            rows = conn.execute(query.limit(limit + 1)).mappings().all()
            has_more = len(rows) > limit
            rows = rows[:limit]
            if before and not after:
                rows = list(reversed(rows))
            return [self._batch(row, self._tally(conn, row["id"])) for row in rows], has_more

    def cancel_batch(self, batch_id: str, owner: str, now: float) -> batch_model.Batch | None:
        """Flip the batch to cancelling and end every unfinished request as
        canceled at once (results already written are kept). A worker still
        running one of them loses its lease and drops its result; the next
        finalize sweep moves the batch to cancelled."""
        with self._write() as conn:
            row = conn.execute(
                sa.select(B.c.status).where(
                    B.c.id == batch_id, B.c.owner == owner, B.c.deleted_at.is_(None)
                )
            ).first()
            if row is None:
                return None
            if BatchStatus(row.status) in CANCELLABLE_BATCH_STATUSES:
                conn.execute(
                    B.update()
                    .where(B.c.id == batch_id)
                    .values(status=BatchStatus.CANCELLING.value, cancelling_at=now)
                )
                conn.execute(
                    R.update()
                    .where(R.c.id.in_(_open_requests_locked(batch_id)))
                    .values(state=RequestState.CANCELED.value, lease_owner=None, finished_at=now)
                )
        return self.get_batch(batch_id, owner)

    def delete_batch(self, batch_id: str, owner: str, now: float) -> bool:
        return self._soft_delete(
            B, batch_id, owner, now, R.delete().where(R.c.batch_id == batch_id)
        )

    def tally(self, batch_id: str) -> StateTally:
        with self._read() as conn:
            return self._tally(conn, batch_id)

    @staticmethod
    def _tally(conn: sa.Connection, batch_id: str) -> StateTally:
        rows = conn.execute(
            sa.select(
                R.c.state,
                sa.func.count(),
                sa.func.coalesce(sa.func.sum(R.c.input_tokens), 0),
                sa.func.coalesce(sa.func.sum(R.c.output_tokens), 0),
                sa.func.coalesce(sa.func.sum(R.c.cost), 0.0),
            )
            .where(R.c.batch_id == batch_id)
            .group_by(R.c.state)
        ).all()
        return StateTally(
            by_state={RequestState(row[0]): int(row[1]) for row in rows},
            input_tokens=sum(int(row[2]) for row in rows),
            output_tokens=sum(int(row[3]) for row in rows),
            cost=sum(float(row[4]) for row in rows),
        )

    def iter_results(
        self, batch_id: str, states: Sequence[RequestState] | None = None
    ) -> Iterator[batch_model.ResultRow]:
        """Every request of the batch in submission order, a page at a time
        (short read transactions, so a long download never blocks writers)."""
        last = -1
        columns = (R.c.idx, R.c.custom_id, R.c.state, R.c.result, R.c.error, R.c.finished_at)
        while True:
            query = sa.select(*columns).where(R.c.batch_id == batch_id, R.c.idx > last)
            if states:
                query = query.where(R.c.state.in_([s.value for s in states]))
            with self._read() as conn:
                rows = conn.execute(query.order_by(R.c.idx).limit(_RESULT_PAGE)).all()
            # Tuple unpacking and a dict lookup rather than attribute access
            # and Enum(): this loop is the floor of a 50k-line download.
            for index, custom_id, state, result, error, finished_at in rows:
                yield batch_model.ResultRow(
                    index,
                    custom_id,
                    _STATES[state],
                    None if result is None else orjson.loads(result),
                    None if error is None else orjson.loads(error),
                    finished_at,
                )
            if len(rows) < _RESULT_PAGE:
                return
            last = rows[-1][0]

    @staticmethod
    def _batch(row: Any, tally: StateTally) -> batch_model.Batch:
        return batch_model.Batch(
            id=row["id"],
            owner=row["owner"],
            dialect=Dialect(row["dialect"]),
            endpoint=row["endpoint"],
            input_file_id=row["input_file_id"],
            completion_window=row["completion_window"],
            metadata=_loads(row["metadata"]),
            status=BatchStatus(row["status"]),
            errors=_loads(row["errors"]),
            total=row["total"],
            created_at=row["created_at"],
            expires_at=row["expires_at"],
            in_progress_at=row["in_progress_at"],
            finalizing_at=row["finalizing_at"],
            completed_at=row["completed_at"],
            failed_at=row["failed_at"],
            expired_at=row["expired_at"],
            cancelling_at=row["cancelling_at"],
            cancelled_at=row["cancelled_at"],
            tally=tally,
        )
