"""The JobStore on SQLAlchemy Core: one implementation for SQLite and PostgreSQL.

The two differ only where the databases do: PostgreSQL claims with
``FOR UPDATE SKIP LOCKED`` so many workers claim in parallel; SQLite serializes
writers with ``BEGIN IMMEDIATE`` (see engine.py), which makes the same
statements safe there.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import orjson
import sqlalchemy as sa

from batchgate.domain import batch as batch_model
from batchgate.domain import fairness, result_files
from batchgate.domain.counts import StateTally
from batchgate.domain.states import (
    CANCELLABLE_BATCH_STATUSES,
    BatchStatus,
    Dialect,
    RequestState,
)
from batchgate.store import engine as engine_module
from batchgate.store import port, tables

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


class SqlJobStore:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.is_postgres = engine.dialect.name == "postgresql"

    @classmethod
    def open(cls, url: str, *, migrate: bool = True) -> SqlJobStore:
        engine = engine_module.create_engine(url)
        if migrate:
            engine_module.migrate(engine)
        return cls(engine)

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

    # -- API keys -------------------------------------------------------------
    def create_key(self, name: str, key_hash: str, prefix: str, now: float) -> port.ApiKey:
        from batchgate.domain import ids

        key = port.ApiKey(
            id=ids.new_key_id(), name=name, prefix=prefix, created_at=now, revoked_at=None
        )
        with self._write() as conn:
            conn.execute(
                K.insert().values(
                    id=key.id, name=name, key_hash=key_hash, prefix=prefix, created_at=now
                )
            )
        return key

    def list_keys(self) -> list[port.ApiKey]:
        with self._read() as conn:
            rows = conn.execute(sa.select(K).order_by(K.c.created_at)).mappings().all()
        return [self._key(row) for row in rows]

    def revoke_key(self, key_id_or_name: str, now: float) -> int:
        with self._write() as conn:
            result = conn.execute(
                K.update()
                .where(sa.or_(K.c.id == key_id_or_name, K.c.name == key_id_or_name))
                .where(K.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
        return result.rowcount

    def keys_with_prefix(self, prefix: str) -> list[tuple[port.ApiKey, str]]:
        """Keys whose display prefix matches, with their stored hashes."""
        with self._read() as conn:
            rows = conn.execute(sa.select(K).where(K.c.prefix == prefix)).mappings().all()
        return [(self._key(row), row["key_hash"]) for row in rows]

    def count_active_keys(self) -> int:
        with self._read() as conn:
            count = conn.execute(
                sa.select(sa.func.count()).select_from(K).where(K.c.revoked_at.is_(None))
            ).scalar_one()
        return int(count)

    @staticmethod
    def _key(row: Any) -> port.ApiKey:
        return port.ApiKey(
            id=row["id"],
            name=row["name"],
            prefix=row["prefix"],
            created_at=row["created_at"],
            revoked_at=row["revoked_at"],
        )

    # -- files ----------------------------------------------------------------
    def create_file(self, record: port.FileRecord, chunks: Iterable[bytes]) -> port.FileRecord:
        """Store a file's content chunk by chunk in one transaction: either the
        whole file is there or none of it is."""
        size = 0
        with self._write() as conn:
            for seq, chunk in enumerate(_rechunk(chunks, _FILE_CHUNK)):
                conn.execute(FC.insert().values(file_id=record.id, seq=seq, data=chunk))
                size += len(chunk)
            stored = port.FileRecord(**{**record.__dict__, "bytes": size or record.bytes})
            conn.execute(F.insert().values(**stored.__dict__))
        return stored

    def get_file(self, file_id: str, owner: str) -> port.FileRecord | None:
        with self._read() as conn:
            row = (
                conn.execute(
                    sa.select(F).where(
                        F.c.id == file_id, F.c.owner == owner, F.c.deleted_at.is_(None)
                    )
                )
                .mappings()
                .first()
            )
        return None if row is None else self._file(row)

    def list_files(
        self, owner: str, *, purpose: str | None, limit: int, after: str | None, ascending: bool
    ) -> tuple[list[port.FileRecord], bool]:
        query = sa.select(F).where(F.c.owner == owner, F.c.deleted_at.is_(None))
        if purpose:
            query = query.where(F.c.purpose == purpose)
        order = (F.c.created_at, F.c.id)
        with self._read() as conn:
            if after:
                pivot = conn.execute(
                    sa.select(F.c.created_at, F.c.id).where(F.c.id == after, F.c.owner == owner)
                ).first()
                if pivot is not None:
                    cursor = sa.tuple_(*order)
                    query = query.where(
                        cursor > sa.tuple_(*pivot) if ascending else cursor < sa.tuple_(*pivot)
                    )
            query = query.order_by(*(c.asc() if ascending else c.desc() for c in order))
            rows = conn.execute(query.limit(limit + 1)).mappings().all()
        return [self._file(row) for row in rows[:limit]], len(rows) > limit

    def iter_file_chunks(self, file_id: str) -> Iterator[bytes]:
        seq = 0
        while True:
            with self._read() as conn:
                rows = conn.execute(
                    sa.select(FC.c.seq, FC.c.data)
                    .where(FC.c.file_id == file_id, FC.c.seq >= seq)
                    .order_by(FC.c.seq)
                    .limit(8)
                ).all()
            if not rows:
                return
            for row in rows:
                yield bytes(row.data)
            seq = rows[-1].seq + 1

    def delete_file(self, file_id: str, owner: str, now: float) -> bool:
        return self._soft_delete(F, file_id, owner, now, FC.delete().where(FC.c.file_id == file_id))

    def set_file_bytes(self, file_id: str, size: int) -> None:
        """Record the measured size of a rendered result file (status
        ``processed`` from then on)."""
        with self._write() as conn:
            conn.execute(F.update().where(F.c.id == file_id).values(bytes=size, status="processed"))

    @staticmethod
    def _file(row: Any) -> port.FileRecord:
        return port.FileRecord(
            id=row["id"],
            owner=row["owner"],
            purpose=row["purpose"],
            filename=row["filename"],
            bytes=row["bytes"],
            status=row["status"],
            created_at=row["created_at"],
            batch_id=row["batch_id"],
            kind=row["kind"],
        )

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

    # -- the queue ------------------------------------------------------------
    def claim(
        self, model: str, n: int, worker_id: str, now: float, lease_seconds: float
    ) -> list[batch_model.ClaimedRequest]:
        """Lease up to ``n`` queued requests of ``model``, shared fairly across
        keys and batches; each batch's share is taken in one statement."""
        if n <= 0:
            return []
        ready = (
            sa.select(sa.literal(1))
            .where(
                R.c.batch_id == B.c.id,
                R.c.model == model,
                R.c.state == RequestState.QUEUED.value,
                R.c.not_before <= now,
            )
            .exists()
        )
        claimed: list[batch_model.ClaimedRequest] = []
        with self._write() as conn:
            candidates = [
                fairness.Candidate(row.id, row.owner, row.last_claimed_at)
                for row in conn.execute(
                    sa.select(B.c.id, B.c.owner, B.c.last_claimed_at).where(
                        B.c.status == BatchStatus.IN_PROGRESS.value, ready
                    )
                ).all()
            ]
            for batch_id, share in fairness.fair_shares(candidates, n).items():
                picked = (
                    sa.select(R.c.id)
                    .where(
                        R.c.batch_id == batch_id,
                        R.c.model == model,
                        R.c.state == RequestState.QUEUED.value,
                        R.c.not_before <= now,
                    )
                    .order_by(R.c.id)
                    .limit(share)
                    .with_for_update(skip_locked=True)
                    .scalar_subquery()
                )
                rows = conn.execute(
                    R.update()
                    .where(R.c.id.in_(picked))
                    .values(
                        state=RequestState.RUNNING.value,
                        lease_owner=worker_id,
                        lease_expires_at=now + lease_seconds,
                        attempts=R.c.attempts + 1,
                        started_at=now,
                    )
                    .returning(
                        R.c.id, R.c.batch_id, R.c.custom_id, R.c.model, R.c.params, R.c.attempts
                    )
                ).all()
                claimed.extend(
                    batch_model.ClaimedRequest(
                        id=row.id,
                        batch_id=row.batch_id,
                        custom_id=row.custom_id,
                        model=row.model,
                        params=row.params,
                        attempt=row.attempts,
                    )
                    for row in rows
                )
                if rows:
                    conn.execute(B.update().where(B.c.id == batch_id).values(last_claimed_at=now))
        claimed.sort(key=lambda request: request.id)
        return claimed

    def extend_leases(
        self, worker_id: str, request_ids: Iterable[int], now: float, lease_seconds: float
    ) -> set[int]:
        """Heartbeat: push out the leases of the requests this worker is still
        working on; returns those it still holds (anything missing was
        cancelled, expired or reclaimed). A row the worker owns but no longer
        works on (its task died) is not extended, so its lease runs out and
        the sweep requeues it."""
        wanted = sorted(set(request_ids))
        if not wanted:
            return set()
        # Lock the rows in id order, like record_outcomes, so a heartbeat and
        # a result write of the same worker cannot deadlock on PostgreSQL.
        locked = (
            sa.select(R.c.id)
            .where(
                R.c.id.in_(wanted),
                R.c.lease_owner == worker_id,
                R.c.state == RequestState.RUNNING.value,
            )
            .order_by(R.c.id)
            .with_for_update()
            .scalar_subquery()
        )
        with self._write() as conn:
            rows = conn.execute(
                R.update()
                .where(R.c.id.in_(locked))
                .values(lease_expires_at=now + lease_seconds)
                .returning(R.c.id)
            ).all()
        return {row.id for row in rows}

    def held_request_ids(self, worker_id: str) -> set[int]:
        with self._read() as conn:
            rows = conn.execute(
                sa.select(R.c.id).where(
                    R.c.lease_owner == worker_id, R.c.state == RequestState.RUNNING.value
                )
            ).all()
        return {row.id for row in rows}

    def record_outcomes(self, outcomes: Sequence[port.Outcome], now: float) -> list[bool]:
        """Write many attempts' outcomes in one transaction (group commit).
        Each write is fenced on lease owner and attempt number: a worker that
        lost its lease cannot overwrite what happened since."""
        applied: dict[int, bool] = {}
        with self._write() as conn:
            # In id order, so concurrent writers lock rows in the same order.
            for outcome in sorted(outcomes, key=lambda o: o.request_id):
                fence = {
                    "b_id": outcome.request_id,
                    "b_owner": outcome.worker_id,
                    "b_attempt": outcome.attempt,
                    "b_error": _dumps(outcome.error),
                }
                if outcome.state is RequestState.QUEUED:
                    statement = _REQUEUE
                    params = {
                        **fence,
                        "b_not_before": outcome.not_before,
                        "b_refund": 1 if outcome.refund_attempt else 0,
                    }
                else:
                    statement = _FINISH
                    params = {
                        **fence,
                        "b_state": outcome.state.value,
                        "b_result": _dumps(outcome.result),
                        "b_input_tokens": outcome.input_tokens,
                        "b_output_tokens": outcome.output_tokens,
                        "b_cost": outcome.cost,
                        "b_now": now,
                    }
                applied[outcome.request_id] = conn.execute(statement, params).rowcount == 1
        return [applied[outcome.request_id] for outcome in outcomes]

    def requeue_lost_leases(self, now: float, max_attempts: int) -> int:
        """Requests whose worker stopped heartbeating go back to the queue; a
        request that has already had every attempt ends errored instead."""
        lost = (R.c.state == RequestState.RUNNING.value) & (R.c.lease_expires_at < now)
        with self._write() as conn:
            errored = conn.execute(
                R.update()
                .where(lost, R.c.attempts >= max_attempts)
                .values(
                    state=RequestState.ERRORED.value,
                    lease_owner=None,
                    finished_at=now,
                    error=_dumps(
                        {
                            "type": "api_error",
                            "message": f"worker lost the request {max_attempts} times",
                        }
                    ),
                )
            ).rowcount
            requeued = conn.execute(
                R.update()
                .where(lost)
                .values(state=RequestState.QUEUED.value, lease_owner=None, lease_expires_at=None)
            ).rowcount
        return int(errored) + int(requeued)

    def expire_batches(self, now: float) -> list[str]:
        """Batches past their completion window: unfinished requests end
        expired, finished ones are kept, the batch is expired."""
        expirable = [BatchStatus.IN_PROGRESS.value, BatchStatus.VALIDATING.value]
        with self._write() as conn:
            ids = [
                row.id
                for row in conn.execute(
                    sa.select(B.c.id).where(B.c.status.in_(expirable), B.c.expires_at <= now)
                ).all()
            ]
            expired: list[str] = []
            for batch_id in ids:
                # Guarded on the status, so of two concurrent sweeps only one
                # ends the batch (and creates its result files).
                flipped = conn.execute(
                    B.update()
                    .where(B.c.id == batch_id, B.c.status.in_(expirable))
                    .values(status=BatchStatus.EXPIRED.value, expired_at=now)
                ).rowcount
                if not flipped:
                    continue
                conn.execute(
                    R.update()
                    .where(R.c.id.in_(_open_requests_locked(batch_id)))
                    .values(state=RequestState.EXPIRED.value, lease_owner=None, finished_at=now)
                )
                expired.append(batch_id)
            _add_result_files(conn, expired, now)
        return expired

    def finalize_batches(self, now: float, batch_ids: Iterable[str] | None = None) -> list[str]:
        """Batches with no open request left end: in_progress -> completed
        (through finalizing), cancelling -> cancelled."""
        open_requests = (
            sa.select(sa.literal(1)).where(R.c.batch_id == B.c.id, R.c.state.in_(_OPEN)).exists()
        )
        query = sa.select(B.c.id, B.c.status).where(
            B.c.status.in_([BatchStatus.IN_PROGRESS.value, BatchStatus.CANCELLING.value]),
            ~open_requests,
        )
        if batch_ids is not None:
            wanted = list(set(batch_ids))
            if not wanted:
                return []
            query = query.where(B.c.id.in_(wanted))
        ended: list[str] = []
        with self._write() as conn:
            for row in conn.execute(query).all():
                if row.status == BatchStatus.CANCELLING.value:
                    values = {"status": BatchStatus.CANCELLED.value, "cancelled_at": now}
                else:
                    values = {
                        "status": BatchStatus.COMPLETED.value,
                        "finalizing_at": now,
                        "completed_at": now,
                    }
                flipped = conn.execute(
                    B.update().where(B.c.id == row.id, B.c.status == row.status).values(**values)
                ).rowcount
                if flipped:
                    ended.append(row.id)
            _add_result_files(conn, ended, now)
        return ended

    def queued_models(self, now: float) -> set[str]:
        with self._read() as conn:
            rows = conn.execute(
                sa.select(R.c.model)
                .distinct()
                .join(B, B.c.id == R.c.batch_id)
                .where(
                    B.c.status == BatchStatus.IN_PROGRESS.value,
                    R.c.state == RequestState.QUEUED.value,
                )
            ).all()
        return {row.model for row in rows}


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


# The two fenced outcome writes, built once: record_outcomes runs them for
# every finished attempt, and building statements per row cost more than
# executing them.
_FENCE = (
    (R.c.id == sa.bindparam("b_id"))
    & (R.c.lease_owner == sa.bindparam("b_owner"))
    & (R.c.attempts == sa.bindparam("b_attempt"))
    & (R.c.state == RequestState.RUNNING.value)
)
_FINISH = (
    R.update()
    .where(_FENCE)
    .values(
        state=sa.bindparam("b_state"),
        lease_owner=None,
        lease_expires_at=None,
        error=sa.bindparam("b_error"),
        result=sa.bindparam("b_result"),
        input_tokens=sa.bindparam("b_input_tokens"),
        output_tokens=sa.bindparam("b_output_tokens"),
        cost=sa.bindparam("b_cost"),
        finished_at=sa.bindparam("b_now"),
    )
)
_REQUEUE = (
    R.update()
    .where(_FENCE)
    .values(
        state=RequestState.QUEUED.value,
        lease_owner=None,
        lease_expires_at=None,
        error=sa.bindparam("b_error"),
        not_before=sa.bindparam("b_not_before"),
        attempts=R.c.attempts - sa.bindparam("b_refund", type_=sa.Integer),
    )
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


def _rechunk(chunks: Iterable[bytes], size: int) -> Iterator[bytes]:
    """Regroup arbitrary chunks into pieces of ``size`` bytes (the last shorter)."""
    buffer = bytearray()
    for chunk in chunks:
        buffer += chunk
        while len(buffer) >= size:
            yield bytes(buffer[:size])
            del buffer[:size]
    if buffer:
        yield bytes(buffer)
