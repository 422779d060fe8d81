"""Upstream jobs (port.UpstreamJobStore): a provider-batch model's queued rows
packed into jobs, each leased to one worker at a time, its rows leased to the
job (domain/upstream_jobs.py).

Multi-row writes lock and write rows in id order, like the queue's, so none
deadlocks another on PostgreSQL; ids go to the database in chunks, since a
job may hold 100,000 rows and a statement's parameters are bounded (SQLite).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa

from batchgate.domain import upstream_jobs as uj
from batchgate.domain.states import BatchStatus, RequestState
from batchgate.store import tables
from batchgate.store.sql_common import B, R, SqlBase
from batchgate.store.sql_queue import locked_running_rows

J = tables.upstream_jobs

_ID_CHUNK = 500  # ids per IN list
# The first key of the PostgreSQL advisory lock that start_create takes per
# kind (the second is the kind's hash); the migrations use 7158742.
CREATE_LOCK = 7158743

_QUEUED = RequestState.QUEUED.value
_RUNNING = RequestState.RUNNING.value
# How a row a job sent ends without the job serving it (uj.UNSERVED_STATES).
_UNSERVED = sorted(state.value for state in uj.UNSERVED_STATES)
# How a row ends that a path served (uj.SERVED_STATES); the stats read it too.
SERVED_STATE_VALUES = sorted(state.value for state in uj.SERVED_STATES)


def _chunks(ids: Iterable[int]) -> Iterator[list[int]]:
    """``ids`` once each, in id order (the lock order), a chunk at a time."""
    values = sorted(set(ids))
    for start in range(0, len(values), _ID_CHUNK):
        yield values[start : start + _ID_CHUNK]


def _pending(model: str, now: float) -> Any:
    """The model's rows a job may take now: queued, not routed elsewhere,
    backoff over, their batch in progress."""
    return (
        (R.c.model == model)
        & (R.c.state == _QUEUED)
        & R.c.route.is_(None)
        & (R.c.not_before <= now)
        & (B.c.status == BatchStatus.IN_PROGRESS.value)
    )


def _held(job_id: str) -> Any:
    return (R.c.lease_owner == job_id) & (R.c.state == _RUNNING)


def _job(row: Any) -> uj.UpstreamJob:
    values = dict(row._mapping)
    values["state"] = uj.JobState(values["state"])
    if values["end_status"] is not None:
        values["end_status"] = uj.EndStatus(values["end_status"])
    return uj.UpstreamJob(**values)


def _job_values(job: uj.UpstreamJob) -> dict[str, Any]:
    values = {column.name: getattr(job, column.name) for column in J.columns}
    values["state"] = job.state.value
    values["end_status"] = None if job.end_status is None else job.end_status.value
    return values


def _update_values(update: uj.JobUpdate) -> dict[str, Any]:
    """The columns ``update`` sets (its fields that are not None)."""
    return {
        name: value.value if isinstance(value, enum.Enum) else value
        for name, value in update.changes().items()
    }


def _held_request(row: Any) -> uj.HeldRequest:
    return uj.HeldRequest(
        id=row.id,
        batch_id=row.batch_id,
        params=row.params,
        attempt=row.attempts,
        deadline=row.expires_at,
    )


class UpstreamJobs(SqlBase):
    """port.UpstreamJobStore on SQLite and PostgreSQL."""

    def pending_upstream_work(self, model: str, now: float) -> uj.PendingWork:
        with self._read() as conn:
            row = conn.execute(
                sa.select(
                    sa.func.count(),
                    sa.func.coalesce(sa.func.sum(sa.func.length(R.c.params)), 0),
                    sa.func.min(B.c.created_at),
                    sa.func.min(B.c.expires_at),
                )
                .select_from(R.join(B, B.c.id == R.c.batch_id))
                .where(_pending(model, now))
            ).one()
        return uj.PendingWork(
            count=int(row[0]),
            bytes=int(row[1]),
            oldest_queued_at=row[2],
            earliest_deadline=row[3],
        )

    def assemble_job(
        self, job: uj.UpstreamJob, max_requests: int, now: float
    ) -> list[uj.HeldRequest]:
        """Earliest deadline first (the batch's window end, then the row id);
        rows another assembler has locked are skipped (PostgreSQL), so two
        concurrent assemblies never share a row."""
        if max_requests <= 0:
            return []
        picked = (
            sa.select(R.c.id, R.c.batch_id, R.c.params, R.c.attempts, B.c.expires_at)
            .select_from(R.join(B, B.c.id == R.c.batch_id))
            .where(_pending(job.model, now))
            .order_by(B.c.expires_at, R.c.id)
            .limit(max_requests)
            .with_for_update(skip_locked=True, of=R)
        )
        with self._write() as conn:
            rows = conn.execute(picked).all()
            if not rows:
                return []
            held = [
                uj.HeldRequest(r.id, r.batch_id, r.params, r.attempts + 1, r.expires_at)
                for r in rows
            ]
            self._take_rows(conn, job.id, [r.id for r in rows], now)
            stored = _job_values(job)
            stored.update(
                state=uj.JobState.ASSEMBLING.value,
                request_count=len(held),
                deadline=min(r.deadline for r in held),
                bytes=job.bytes or sum(len(r.params) for r in held),
            )
            conn.execute(J.insert().values(**stored))
        return sorted(held, key=lambda request: request.id)

    @staticmethod
    def _take_rows(conn: sa.Connection, job_id: str, ids: list[int], now: float) -> None:
        for chunk in _chunks(ids):
            conn.execute(
                R.update()
                .where(R.c.id.in_(chunk), R.c.state == _QUEUED)
                .values(
                    state=_RUNNING,
                    lease_owner=job_id,
                    lease_expires_at=now + uj.JOB_ROW_LEASE_SECONDS,
                    attempts=R.c.attempts + 1,
                    started_at=now,
                    generating_at=None,
                    upstream_job_id=job_id,
                )
            )

    def job_requests(
        self,
        job_id: str,
        request_ids: Iterable[int] | None = None,
        *,
        with_params: bool = True,
    ) -> list[uj.HeldRequest]:
        params = R.c.params if with_params else sa.literal("").label("params")
        query = (
            sa.select(R.c.id, R.c.batch_id, params, R.c.attempts, B.c.expires_at)
            .select_from(R.join(B, B.c.id == R.c.batch_id))
            .where(_held(job_id))
            .order_by(R.c.id)
        )
        with self._read() as conn:
            if request_ids is None:
                return [_held_request(row) for row in conn.execute(query).all()]
            rows = [
                row
                for chunk in _chunks(request_ids)
                for row in conn.execute(query.where(R.c.id.in_(chunk))).all()
            ]
        return [_held_request(row) for row in rows]

    def job_hold(self, job_id: str) -> uj.Hold:
        query = (
            sa.select(sa.func.count(), sa.func.min(B.c.expires_at))
            .select_from(R.join(B, B.c.id == R.c.batch_id))
            .where(_held(job_id))
        )
        with self._read() as conn:
            count, earliest = conn.execute(query).one()
        return uj.Hold(count, earliest)

    def dropped_params(self, job_id: str, request_ids: Iterable[int]) -> dict[int, str]:
        unserved = R.c.state.in_(_UNSERVED) | (R.c.route == uj.Path.REALTIME.value)
        found: dict[int, str] = {}
        with self._read() as conn:
            for chunk in _chunks(request_ids):
                rows = conn.execute(
                    sa.select(R.c.id, R.c.params).where(
                        R.c.id.in_(chunk), R.c.upstream_job_id == job_id, unserved
                    )
                ).all()
                found.update((row.id, row.params) for row in rows)
        return found

    def release_job_requests(
        self,
        job_id: str,
        request_ids: Iterable[int],
        now: float,
        *,
        route: uj.Path | None = None,
    ) -> int:
        values = {
            "state": _QUEUED,
            "lease_owner": None,
            "lease_expires_at": None,
            "generating_at": None,
            "not_before": now,
            "attempts": R.c.attempts - 1,
            "route": None if route is None else route.value,
        }
        return self._move_held(job_id, request_ids, values)

    def expire_job_requests(self, job_id: str, request_ids: Iterable[int], now: float) -> int:
        values = {
            "state": RequestState.EXPIRED.value,
            "lease_owner": None,
            "lease_expires_at": None,
            "finished_at": now,
        }
        return self._move_held(job_id, request_ids, values)

    def _move_held(self, job_id: str, request_ids: Iterable[int], values: dict[str, Any]) -> int:
        """Write ``values`` to the rows among ``request_ids`` the job still
        holds, locked in id order; how many there were."""
        moved = 0
        with self._write() as conn:
            for chunk in _chunks(request_ids):
                locked = locked_running_rows(chunk, job_id)
                moved += conn.execute(
                    R.update().where(R.c.id.in_(locked), _held(job_id)).values(**values)
                ).rowcount
        return moved

    def claim_due_jobs(
        self, models: Sequence[str], worker_id: str, now: float, lease_seconds: float, limit: int
    ) -> list[uj.UpstreamJob]:
        """Oldest first; a job another worker has locked is skipped."""
        if not models or limit <= 0:
            return []
        due = (
            sa.select(J.c.id)
            .where(
                J.c.model.in_(sorted(set(models))),
                (J.c.state != uj.JobState.ENDED.value) | J.c.downloaded_at.is_(None),
                J.c.next_poll_at <= now,
                J.c.lease_owner.is_(None)
                | (J.c.lease_expires_at <= now)
                | (J.c.lease_owner == worker_id),
            )
            .order_by(J.c.created_at, J.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        with self._write() as conn:
            ids = [row.id for row in conn.execute(due).all()]
            if not ids:
                return []
            rows = conn.execute(
                J.update()
                .where(J.c.id.in_(ids))
                .values(lease_owner=worker_id, lease_expires_at=now + lease_seconds)
                .returning(*J.columns)
            ).all()
        return sorted((_job(row) for row in rows), key=lambda job: (job.created_at, job.id))

    def update_job(
        self,
        job_id: str,
        worker_id: str,
        update: uj.JobUpdate,
        now: float,
        lease_seconds: float,
    ) -> uj.UpstreamJob | None:
        fence = (J.c.id == job_id) & (J.c.lease_owner == worker_id)
        if update.state is not None:
            sources = sorted(state.value for state in uj.job_sources(update.state))
            fence = fence & J.c.state.in_(sources)
        values = _update_values(update)
        values["lease_expires_at"] = now + lease_seconds
        with self._write() as conn:
            row = conn.execute(
                J.update().where(fence).values(**values).returning(*J.columns)
            ).first()
        return None if row is None else _job(row)

    def release_job_lease(self, job_id: str, worker_id: str) -> None:
        with self._write() as conn:
            conn.execute(
                J.update()
                .where(J.c.id == job_id, J.c.lease_owner == worker_id)
                .values(lease_owner=None, lease_expires_at=None)
            )

    def get_job(self, job_id: str) -> uj.UpstreamJob | None:
        with self._read() as conn:
            row = conn.execute(sa.select(J).where(J.c.id == job_id)).first()
        return None if row is None else _job(row)

    def list_jobs(
        self,
        *,
        model: str | None = None,
        states: Iterable[uj.JobState] | None = None,
        ended_since: float | None = None,
        limit: int = 100,
    ) -> list[uj.UpstreamJob]:
        query = sa.select(J)
        if model is not None:
            query = query.where(J.c.model == model)
        if states is not None:
            query = query.where(J.c.state.in_(sorted(state.value for state in states)))
        if ended_since is not None:
            query = query.where(J.c.ended_at >= ended_since)
        query = query.order_by(J.c.created_at.desc(), J.c.id.desc()).limit(limit)
        with self._read() as conn:
            return [_job(row) for row in conn.execute(query).all()]

    def jobs_for_batch(self, batch_id: str) -> list[uj.UpstreamJob]:
        """Oldest first: a row keeps the id of the last job that held it."""
        used = sa.select(R.c.upstream_job_id).where(
            R.c.batch_id == batch_id, R.c.upstream_job_id.is_not(None)
        )
        with self._read() as conn:
            rows = conn.execute(
                sa.select(J).where(J.c.id.in_(used)).order_by(J.c.created_at, J.c.id)
            ).all()
        return [_job(row) for row in rows]

    def served_paths(self, batch_id: str) -> dict[uj.Path, int]:
        """One grouped read of the batch's rows (``ix_requests_claim``)."""
        query = (
            sa.select(R.c.route, sa.func.count())
            .where(
                R.c.batch_id == batch_id, R.c.route.is_not(None), R.c.state.in_(SERVED_STATE_VALUES)
            )
            .group_by(R.c.route)
        )
        with self._read() as conn:
            rows = conn.execute(query).all()
        return {uj.Path(route): int(count) for route, count in rows}

    def fallback_due(self, model: str, deadline_before: float) -> dict[str, list[int]]:
        open_states = sorted(state.value for state in uj.OPEN_JOB_STATES)
        with self._read() as conn:
            rows = conn.execute(
                sa.select(J.c.id, R.c.id)
                .select_from(
                    J.join(R, (R.c.upstream_job_id == J.c.id) & (R.c.lease_owner == J.c.id)).join(
                        B, B.c.id == R.c.batch_id
                    )
                )
                .where(
                    J.c.model == model,
                    J.c.state.in_(open_states),
                    R.c.state == _RUNNING,
                    B.c.expires_at < deadline_before,
                )
                .order_by(J.c.id, R.c.id)
            ).all()
        due: dict[str, list[int]] = {}
        for job_id, request_id in rows:
            due.setdefault(job_id, []).append(request_id)
        return due

    def recorded_upstream_batch_ids(self, kind: str, since: float) -> set[str]:
        with self._read() as conn:
            rows = conn.execute(
                sa.select(J.c.upstream_batch_id).where(
                    J.c.kind == kind,
                    J.c.created_at >= since,
                    J.c.upstream_batch_id.is_not(None),
                )
            ).all()
        return {row[0] for row in rows}

    def start_create(
        self, job_id: str, worker_id: str, now: float, lease_seconds: float
    ) -> uj.UpstreamJob | None:
        other = J.alias("other")
        unresolved = (
            sa.select(other.c.id)
            .where(
                other.c.kind == J.c.kind,
                other.c.id != J.c.id,
                other.c.state.in_(sorted(state.value for state in uj.UNRESOLVED_CREATE_STATES)),
                other.c.create_started_at.is_not(None),
                other.c.upstream_batch_id.is_(None),
            )
            .exists()
        )
        with self._write() as conn:
            kind = conn.execute(sa.select(J.c.kind).where(J.c.id == job_id)).scalar()
            if kind is None:
                return None
            if self.is_postgres:
                # Two workers' checks must not pass side by side (each sees
                # the other's create not yet begun): one at a time per kind,
                # until this transaction ends. SQLite writers queue anyway.
                conn.execute(
                    sa.select(
                        sa.func.pg_advisory_xact_lock(
                            sa.cast(CREATE_LOCK, sa.Integer), sa.func.hashtext(kind)
                        )
                    )
                )
            row = conn.execute(
                J.update()
                .where(J.c.id == job_id, J.c.lease_owner == worker_id, ~unresolved)
                .values(create_started_at=now, lease_expires_at=now + lease_seconds)
                .returning(*J.columns)
            ).first()
        return None if row is None else _job(row)
