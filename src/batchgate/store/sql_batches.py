"""Batches: create, read, list, cancel, delete, tally and stream results."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import orjson
import sqlalchemy as sa

from batchgate.domain import batch as batch_model
from batchgate.domain import failures, pages, quotas, rerun, states
from batchgate.domain import files as file_model
from batchgate.domain.counts import StateTally
from batchgate.domain.states import BatchStatus, Dialect, RequestState
from batchgate.store import sql_webhooks
from batchgate.store.sql_common import (
    _INSERT_CHUNK,
    _RESULT_PAGE,
    _STATES,
    B,
    R,
    SqlBase,
    _admit,
    _count_tally,
    _dump_error,
    _dump_input_errors,
    _dumps,
    _enqueued_tokens,
    _load_error,
    _load_input_errors,
    _load_tally,
    _loads,
    _open_requests_locked,
    _status_in,
)
from batchgate.store.sql_keys_files import _insert_file


class Batches(SqlBase):
    """Batch rows and the read side of their requests."""

    # -- batches --------------------------------------------------------------
    def create_batch(
        self,
        batch: batch_model.Batch,
        requests: Iterable[batch_model.NewRequest],
        admission: quotas.Admission | None = None,
        input_file: tuple[file_model.FileRecord, Iterable[bytes]] | None = None,
    ) -> None:
        """Store a batch and its requests (and ``input_file``, its inline
        input kept as a file) in one transaction. With an admission, the
        owner's quotas are checked first, in that transaction, so a batch over
        quota leaves nothing behind. A custom_id used twice is a Conflict."""
        try:
            self._insert_batch(batch, requests, admission, input_file)
        except sa.exc.IntegrityError as exc:
            raise batch_model.ids_taken(batch.id) from exc

    def _insert_batch(
        self,
        batch: batch_model.Batch,
        requests: Iterable[batch_model.NewRequest],
        admission: quotas.Admission | None,
        input_file: tuple[file_model.FileRecord, Iterable[bytes]] | None,
    ) -> None:
        with self._write() as conn:
            if admission is not None:
                _admit(conn, batch.owner, admission)
            if input_file is not None:
                record, chunks = input_file
                _insert_file(conn, record, chunks, admission)
            conn.execute(B.insert().values(**self._batch_values(batch)))
            rows: list[dict[str, Any]] = []
            models: set[str] = set()
            for index, request in enumerate(requests):
                models.add(request.model)
                terminal = request.state.is_terminal
                rows.append(
                    {
                        "batch_id": batch.id,
                        "idx": index,
                        "custom_id": request.custom_id,
                        "model": request.model,
                        "params": request.params,
                        "state": request.state.value,
                        "error": _dump_error(request.error),
                        "finished_at": batch.created_at if terminal else None,
                        "enqueued_tokens": request.enqueued_tokens,
                    }
                )
                if len(rows) >= _INSERT_CHUNK:
                    conn.execute(R.insert(), rows)
                    rows = []
            if rows:
                conn.execute(R.insert(), rows)
            if len(models) == 1:
                # The batch's model is its requests' one model (known only
                # once the requests, streamed, have all been read).
                conn.execute(B.update().where(B.c.id == batch.id).values(model=models.pop()))

    def enqueued_tokens(self, owner: str, models: Sequence[str]) -> dict[str, int]:
        with self._read() as conn:
            return _enqueued_tokens(conn, owner, list(models))

    def check_admission(self, owner: str, admission: quotas.Admission) -> None:
        with self._read() as conn:
            _admit(conn, owner, admission, lock=False)

    def fail_batch(
        self, batch: batch_model.Batch, errors: list[failures.InputError], now: float
    ) -> None:
        """Store a batch that failed validation: no requests, only its errors."""
        with self._write() as conn:
            values = self._batch_values(batch)
            values.update(
                status=BatchStatus.FAILED.value,
                errors=_dump_input_errors(errors, batch.error_count),
                failed_at=now,
                in_progress_at=None,
                results_expire_at=None if batch.results_ttl is None else now + batch.results_ttl,
            )
            conn.execute(B.insert().values(**values))
            sql_webhooks.add_batch_events(conn, [(batch.id, BatchStatus.FAILED)], now)

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
            "errors": _dump_input_errors(batch.errors, batch.error_count),
            "total": batch.total,
            "created_at": batch.created_at,
            "expires_at": batch.expires_at,
            "in_progress_at": batch.in_progress_at,
            "results_ttl": batch.results_ttl,
            "model": batch.model,
        }

    def get_batch(self, batch_id: str, owner: str | None = None) -> batch_model.Batch | None:
        query = sa.select(B).where(B.c.id == batch_id, B.c.deleted_at.is_(None))
        if owner is not None:
            query = query.where(B.c.owner == owner)
        with self._read() as conn:
            row = conn.execute(query).mappings().first()
            if row is None:
                return None
            return self._batch(row, self._tally_of(conn, row))

    def list_batches(
        self,
        owner: str | None,
        *,
        limit: int,
        after: str | None = None,
        before: str | None = None,
        dialects: Sequence[Dialect] | None = None,
    ) -> tuple[list[batch_model.Batch], bool]:
        """Newest first. ``after`` pages towards older batches (OpenAI's and
        Anthropic's ``after_id``); ``before`` towards newer ones. ``owner``
        None lists every key's batches (an admin's view)."""
        mine = sa.true() if owner is None else B.c.owner == owner
        query = sa.select(B).where(mine, B.c.deleted_at.is_(None))
        if dialects:
            query = query.where(B.c.dialect.in_([d.value for d in dialects]))
        cursor = sa.tuple_(B.c.created_at, B.c.id)
        with self._read() as conn:
            for pivot_id, older in ((after, True), (before, False)):
                if not pivot_id:
                    continue
                pivot = conn.execute(
                    sa.select(B.c.created_at, B.c.id).where(B.c.id == pivot_id, mine)
                ).first()
                if pivot is not None:
                    query = query.where(
                        cursor < sa.tuple_(*pivot) if older else cursor > sa.tuple_(*pivot)
                    )
            upwards = pages.walks_upwards(after, before)
            if upwards:
                query = query.order_by(B.c.created_at.asc(), B.c.id.asc())
            else:
                query = query.order_by(B.c.created_at.desc(), B.c.id.desc())
            rows, has_more = pages.page(
                conn.execute(query.limit(limit + 1)).mappings().all(), limit, upwards=upwards
            )
            return [self._batch(row, self._tally_of(conn, row)) for row in rows], has_more

    def cancel_batch(self, batch_id: str, owner: str, now: float) -> batch_model.Batch | None:
        """Flip the batch to cancelling and end every unfinished request as
        canceled at once (results already written are kept). A worker still
        running one of them loses its lease and drops its result; the next
        finalize sweep moves the batch to cancelled."""
        with self._write() as conn:
            flipped = conn.execute(
                B.update()
                .where(
                    B.c.id == batch_id,
                    B.c.owner == owner,
                    B.c.deleted_at.is_(None),
                    _status_in(states.sources(BatchStatus.CANCELLING)),
                )
                .values(status=BatchStatus.CANCELLING.value, cancelling_at=now)
            ).rowcount
            if flipped:
                conn.execute(
                    R.update()
                    .where(R.c.id.in_(_open_requests_locked(batch_id, RequestState.CANCELED)))
                    .values(state=RequestState.CANCELED.value, lease_owner=None, finished_at=now)
                )
        return self.get_batch(batch_id, owner)

    def delete_batch(self, batch_id: str, owner: str, now: float) -> bool:
        # Its request rows go with the retention sweep, a chunk at a time: one
        # 50k-row delete would hold SQLite's write lock (so every claim) for seconds.
        return self._soft_delete(B, batch_id, owner, now, results_expire_at=now)

    def tally(self, batch_id: str) -> StateTally:
        with self._read() as conn:
            row = conn.execute(
                sa.select(B.c.id, B.c.frozen_tally).where(B.c.id == batch_id)
            ).first()
            if row is None:
                return self._tally(conn, batch_id)
            return self._tally_of(conn, row._mapping)

    @classmethod
    def _tally_of(cls, conn: sa.Connection, row: Any) -> StateTally:
        """A batch's tally: the one saved before its rows were purged, else
        counted from its rows."""
        frozen = _load_tally(row["frozen_tally"])
        return frozen if frozen is not None else cls._tally(conn, row["id"])

    _tally = staticmethod(_count_tally)

    def iter_results(
        self,
        batch_id: str,
        states: Sequence[RequestState] | None = None,
        *,
        with_params: bool = False,
    ) -> Iterator[batch_model.ResultRow]:
        """Every request of the batch in submission order, a page at a time
        (short read transactions, so a long download never blocks writers);
        with each request's params too if asked."""
        last = -1
        columns: tuple[Any, ...] = (
            R.c.idx,
            R.c.custom_id,
            R.c.state,
            R.c.result,
            R.c.error,
            R.c.finished_at,
            R.c.route,
        )
        if with_params:
            columns = (*columns, R.c.params)
        while True:
            query = sa.select(*columns).where(R.c.batch_id == batch_id, R.c.idx > last)
            if states:
                query = query.where(R.c.state.in_([s.value for s in states]))
            with self._read() as conn:
                rows: Sequence[Any] = conn.execute(
                    query.order_by(R.c.idx).limit(_RESULT_PAGE)
                ).all()
            # Tuple unpacking and a dict lookup rather than attribute access
            # and Enum(): this loop is the floor of a 50k-line download.
            for index, custom_id, state, result, error, finished_at, route, *params in rows:
                yield batch_model.ResultRow(
                    index,
                    custom_id,
                    _STATES[state],
                    None if result is None else orjson.loads(result),
                    _load_error(error),
                    finished_at,
                    params[0] if params else None,
                    route,
                )
            if len(rows) < _RESULT_PAGE:
                return
            last = rows[-1][0]

    def iter_requests(
        self, batch_id: str, states: Sequence[RequestState]
    ) -> Iterator[rerun.StoredRequest]:
        """The batch's requests in the given states, as submitted, in
        submission order, a page at a time (short read transactions)."""
        last = -1
        columns = (R.c.idx, R.c.custom_id, R.c.model, R.c.params, R.c.state, R.c.error)
        wanted = [state.value for state in states]
        while True:
            with self._read() as conn:
                rows = conn.execute(
                    sa.select(*columns)
                    .where(R.c.batch_id == batch_id, R.c.idx > last, R.c.state.in_(wanted))
                    .order_by(R.c.idx)
                    .limit(_RESULT_PAGE)
                ).all()
            for row in rows:
                yield rerun.StoredRequest(
                    row.custom_id, row.model, row.params, _STATES[row.state], _load_error(row.error)
                )
            if len(rows) < _RESULT_PAGE:
                return
            last = rows[-1].idx

    @staticmethod
    def _batch(row: Any, tally: StateTally) -> batch_model.Batch:
        kept_errors, error_count = _load_input_errors(row["errors"])
        return batch_model.Batch(
            id=row["id"],
            owner=row["owner"],
            dialect=Dialect(row["dialect"]),
            endpoint=row["endpoint"],
            input_file_id=row["input_file_id"],
            completion_window=row["completion_window"],
            metadata=_loads(row["metadata"]),
            status=BatchStatus(row["status"]),
            errors=kept_errors,
            error_count=error_count,
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
            results_ttl=row["results_ttl"],
            results_expire_at=row["results_expire_at"],
            model=row["model"],
        )
