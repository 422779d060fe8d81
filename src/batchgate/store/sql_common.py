"""What the SQL store's parts share: table aliases, JSON helpers,
transactions, and the writes more than one part makes."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import orjson
import sqlalchemy as sa

from batchgate.domain import failures, keys, quotas, result_files, retention, states
from batchgate.domain import files as file_model
from batchgate.domain.counts import StateTally
from batchgate.domain.states import ENDED_BATCH_STATUSES, BatchStatus, RequestState
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
_ACTIVE_BATCH = [status.value for status in BatchStatus if status not in ENDED_BATCH_STATUSES]
_STATES = {state.value: state for state in RequestState}


def _dumps(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _loads(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


def _dump_error(error: failures.RequestError | None) -> str | None:
    return None if error is None else orjson.dumps(error.to_json()).decode()


def _load_error(text: str | None) -> failures.RequestError | None:
    return None if text is None else failures.RequestError.from_json(orjson.loads(text))


def _dump_input_errors(errors: Sequence[failures.InputError] | None, count: int = 0) -> str | None:
    """The kept errors as a JSON list; with ``{"data", "total"}`` when some
    were not kept (rows written before the cap hold a plain list)."""
    if errors is None:
        return None
    data = [error.to_json() for error in errors]
    return _dumps({"data": data, "total": count} if count > len(data) else data)


def _load_input_errors(text: str | None) -> tuple[list[failures.InputError] | None, int]:
    """(kept errors, how many there were)."""
    data = _loads(text)
    if data is None:
        return None, 0
    items = data["data"] if isinstance(data, dict) else data
    kept = [failures.InputError.from_json(item) for item in items]
    return kept, int(data["total"]) if isinstance(data, dict) else len(kept)


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
        self,
        table: sa.Table,
        object_id: str,
        owner: str,
        now: float,
        purge: sa.Delete | sa.Update | None = None,
        **expire: float,
    ) -> bool:
        """Mark the owner's object deleted (its row stays, so its id is never
        reused), in one transaction with ``purge`` (small dependent rows) or
        with its bulk content marked expired now (``expire``), which the
        retention sweep then removes in small transactions."""
        with self._write() as conn:
            result = conn.execute(
                table.update()
                .where(
                    table.c.id == object_id, table.c.owner == owner, table.c.deleted_at.is_(None)
                )
                .values(deleted_at=now, **expire)
            )
            if result.rowcount and purge is not None:
                conn.execute(purge)
        return bool(result.rowcount)


def _count_tally(conn: sa.Connection, batch_id: str) -> StateTally:
    """A batch's tally, counted from its request rows."""
    rows = conn.execute(
        sa.select(
            R.c.state,
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(R.c.input_tokens), 0),
            sa.func.coalesce(sa.func.sum(R.c.output_tokens), 0),
            sa.func.coalesce(sa.func.sum(R.c.cost), 0.0),
            sa.func.coalesce(sa.func.sum(R.c.cached_tokens), 0),
            sa.func.coalesce(sa.func.sum(R.c.reasoning_tokens), 0),
            sa.func.count(R.c.generating_at),
        )
        .where(R.c.batch_id == batch_id)
        .group_by(R.c.state)
    ).all()
    return StateTally(
        by_state={RequestState(row[0]): int(row[1]) for row in rows},
        input_tokens=sum(int(row[2]) for row in rows),
        output_tokens=sum(int(row[3]) for row in rows),
        cost=sum(float(row[4]) for row in rows),
        cached_tokens=sum(int(row[5]) for row in rows),
        reasoning_tokens=sum(int(row[6]) for row in rows),
        generating=sum(int(row[7]) for row in rows if row[0] == RequestState.RUNNING.value),
    )


def _dump_tally(tally: StateTally) -> str:
    return orjson.dumps(
        {
            "by_state": {state.value: count for state, count in tally.by_state.items()},
            "input_tokens": tally.input_tokens,
            "output_tokens": tally.output_tokens,
            "cost": tally.cost,
            "cached_tokens": tally.cached_tokens,
            "reasoning_tokens": tally.reasoning_tokens,
        }
    ).decode()


def _load_tally(text: str | None) -> StateTally | None:
    if text is None:
        return None
    data = orjson.loads(text)
    return StateTally(
        by_state={RequestState(state): count for state, count in data["by_state"].items()},
        input_tokens=data["input_tokens"],
        output_tokens=data["output_tokens"],
        cost=data["cost"],
        cached_tokens=data.get("cached_tokens", 0),
        reasoning_tokens=data.get("reasoning_tokens", 0),
    )


def _end_batches(conn: sa.Connection, batch_ids: Sequence[str], now: float) -> None:
    """What happens in the transaction that ends batches, besides their
    status: their results start to age (``results_expire_at``), and OpenAI
    batches get their output/error file rows (see domain/result_files.py),
    expiring with the results. A result file's size is measured later, on
    first description (``set_file_bytes``)."""
    if not batch_ids:
        return
    ids = list(batch_ids)
    conn.execute(
        B.update()
        .where(B.c.id.in_(ids), B.c.results_ttl.is_not(None))
        .values(results_expire_at=now + B.c.results_ttl)
    )
    rows = conn.execute(
        sa.select(B.c.id, B.c.owner, B.c.results_ttl, R.c.state)
        .distinct()
        .join(R, R.c.batch_id == B.c.id)
        .where(
            B.c.id.in_(ids),
            B.c.dialect.in_([d.value for d in result_files.DIALECTS]),
        )
    ).all()
    wanted = {
        (row.id, result_files.kind_of(RequestState(row.state))): (row.owner, row.results_ttl)
        for row in rows
    }
    if not wanted:
        return
    conn.execute(
        F.insert(),
        [
            _file_row(result_files.record(batch_id, owner, kind, now, retention.expiry(now, ttl)))
            for (batch_id, kind), (owner, ttl) in sorted(wanted.items())
        ],
    )


def _file_row(record: file_model.FileRecord) -> dict[str, Any]:
    return {
        **dataclasses.asdict(record),
        "purpose": record.purpose.value,
        "status": record.status.value,
        "kind": record.kind.value,
    }


def _status_in(statuses: Iterable[BatchStatus]) -> Any:
    """A batch-status guard: ``statuses`` come from domain/states.py's table."""
    return B.c.status.in_(sorted(status.value for status in statuses))


def _state_in(request_states: Iterable[RequestState]) -> Any:
    """A request-state guard: ``request_states`` come from domain/states.py's
    table (``request_sources``)."""
    return R.c.state.in_(sorted(state.value for state in request_states))


def _open_requests_locked(batch_id: str, target: RequestState) -> Any:
    """The batch's requests that may move to ``target`` (its unfinished ones),
    row-locked in id order (the order every multi-row write here uses, so
    that none deadlocks another on PostgreSQL)."""
    return (
        sa.select(R.c.id)
        .where(R.c.batch_id == batch_id, _state_in(states.request_sources(target)))
        .order_by(R.c.id)
        .with_for_update()
        .scalar_subquery()
    )


def _key_quotas(row: Any) -> keys.KeyQuotas:
    return keys.KeyQuotas(
        max_enqueued_tokens=_loads(row["max_enqueued_tokens"]) or {},
        max_active_batches=row["max_active_batches"],
        max_requests_per_batch=row["max_requests_per_batch"],
        max_file_bytes=row["max_file_bytes"],
    )


def _enqueued_tokens(conn: sa.Connection, owner: str, models: list[str]) -> dict[str, int]:
    """Input tokens in the owner's queued and running requests, per model."""
    rows = conn.execute(
        sa.select(R.c.model, sa.func.sum(R.c.enqueued_tokens))
        .join(B, B.c.id == R.c.batch_id)
        .where(
            B.c.owner == owner,
            B.c.status.in_(_ACTIVE_BATCH),
            R.c.state.in_(_OPEN),
            R.c.model.in_(models),
        )
        .group_by(R.c.model)
    ).all()
    return {model: int(total or 0) for model, total in rows}


def _admit(
    conn: sa.Connection,
    owner: str,
    admission: quotas.Admission,
    *,
    new_file_id: str | None = None,
    lock: bool = True,
) -> None:
    """Raise unless ``admission``'s demand fits the owner's quotas, in the
    caller's write transaction. The owner's key row is locked first
    (PostgreSQL ``FOR UPDATE``; SQLite's ``BEGIN IMMEDIATE`` already holds
    the database), so concurrent admissions for one key, from any number of
    API processes, are decided one after the other on committed usage.
    ``new_file_id``: a file inserted in this transaction, not counted twice.
    ``lock=False``: only ask (a dry run, in a read transaction)."""
    key_query = sa.select(K).where(K.c.id == owner)
    if lock:
        key_query = key_query.with_for_update()
    row = conn.execute(key_query).mappings().first()
    own = keys.KeyQuotas() if row is None else _key_quotas(row)
    limits = own.over(admission.defaults)
    demand = admission.demand
    active = 0
    if demand.batches and limits.max_active_batches is not None:
        active = conn.execute(
            sa.select(sa.func.count())
            .select_from(B)
            .where(B.c.owner == owner, B.c.deleted_at.is_(None), B.c.status.in_(_ACTIVE_BATCH))
        ).scalar_one()
    tokens: dict[str, int] = {}
    models = quotas.needs_tokens(limits, demand)
    if models:
        tokens = _enqueued_tokens(conn, owner, models)
    stored = 0
    if demand.bytes and limits.max_file_bytes is not None:
        query = sa.select(sa.func.coalesce(sa.func.sum(F.c.bytes), 0)).where(
            F.c.owner == owner,
            F.c.deleted_at.is_(None),
            F.c.purged_at.is_(None),  # expired content, once purged, holds no storage
            F.c.kind == file_model.FileKind.STORED.value,
        )
        if new_file_id is not None:
            query = query.where(F.c.id != new_file_id)
        stored = int(conn.execute(query).scalar_one())
    usage = quotas.Usage(enqueued_tokens=tokens, active_batches=int(active), stored_bytes=stored)
    quotas.check(owner, limits, usage, demand)
