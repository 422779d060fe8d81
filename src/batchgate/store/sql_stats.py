"""Figures over the whole store for operators: per-model queue and throughput,
batches by status, worker heartbeats, schema version. The database is the one
place that sees every worker on every host, so these are exact however many
processes share it."""

from __future__ import annotations

import sqlalchemy as sa

from batchgate.domain import stats, workers
from batchgate.domain.states import BatchStatus, RequestState
from batchgate.store import engine as engine_module
from batchgate.store import tables
from batchgate.store.sql_common import _STATES, B, R, SqlBase, _dumps, _loads

W = tables.workers

_QUEUED = RequestState.QUEUED.value


class Stats(SqlBase):
    def model_stats(
        self, now: float, *, window_seconds: float = 300.0, owner: str | None = None
    ) -> list[stats.ModelStats]:
        """Every model with stored requests, by name; ``owner`` limits them to
        that key's batches. Two grouped reads in one transaction."""
        recent_since = now - window_seconds
        counts = sa.select(
            R.c.model,
            R.c.state,
            sa.func.count(),
            sa.func.sum(sa.case(((R.c.state == _QUEUED) & (R.c.not_before > now), 1), else_=0)),
            sa.func.sum(sa.case((R.c.finished_at >= recent_since, 1), else_=0)),
            sa.func.coalesce(sa.func.sum(R.c.input_tokens), 0),
            sa.func.coalesce(sa.func.sum(R.c.output_tokens), 0),
            sa.func.coalesce(sa.func.sum(R.c.cost), 0.0),
        ).group_by(R.c.model, R.c.state)
        oldest = (
            sa.select(R.c.model, sa.func.min(B.c.created_at))
            .join(B, B.c.id == R.c.batch_id)
            .where(R.c.state == _QUEUED)
            .group_by(R.c.model)
        )
        if owner is not None:
            mine = sa.select(B.c.id).where(B.c.owner == owner).scalar_subquery()
            counts = counts.where(R.c.batch_id.in_(mine))
            oldest = oldest.where(B.c.owner == owner)
        with self._read() as conn:
            rows = conn.execute(counts).all()
            oldest_at = {model: float(at) for model, at in conn.execute(oldest).all()}
        parts: dict[str, stats.ModelTally] = {}
        for model, state, count, waiting, recent, tokens_in, tokens_out, cost in rows:
            parts.setdefault(model, stats.ModelTally()).add(
                _STATES[state],
                int(count),
                waiting=int(waiting or 0),
                recent=int(recent or 0),
                input_tokens=int(tokens_in),
                output_tokens=int(tokens_out),
                cost=float(cost),
            )
        return [
            tally.stats(model, oldest_queued_at=oldest_at.get(model), window_seconds=window_seconds)
            for model, tally in sorted(parts.items())
        ]

    def batch_status_counts(self, owner: str | None = None) -> dict[BatchStatus, int]:
        """Batches (not deleted) per status."""
        query = (
            sa.select(B.c.status, sa.func.count())
            .where(B.c.deleted_at.is_(None))
            .group_by(B.c.status)
        )
        if owner is not None:
            query = query.where(B.c.owner == owner)
        with self._read() as conn:
            return {BatchStatus(status): int(n) for status, n in conn.execute(query).all()}

    # -- workers --------------------------------------------------------------
    def record_worker(self, heartbeat: workers.WorkerHeartbeat) -> None:
        """Insert or refresh one worker's row (only that worker writes it)."""
        values = {
            "host": heartbeat.host,
            "pid": heartbeat.pid,
            "models": _dumps(list(heartbeat.models)),
            "started_at": heartbeat.started_at,
            "last_seen_at": heartbeat.last_seen_at,
            "stopped_at": heartbeat.stopped_at,
            "stats": _dumps(heartbeat.stats),
        }
        with self._write() as conn:
            updated = conn.execute(W.update().where(W.c.id == heartbeat.id).values(**values))
            if not updated.rowcount:
                conn.execute(W.insert().values(id=heartbeat.id, **values))

    def list_workers(self, *, seen_since: float | None = None) -> list[workers.WorkerHeartbeat]:
        """Every worker that ever reported (its counters count towards the
        totals), or only those seen since ``seen_since``; newest first."""
        query = sa.select(W).order_by(W.c.last_seen_at.desc(), W.c.id)
        if seen_since is not None:
            query = query.where(W.c.last_seen_at >= seen_since)
        with self._read() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            workers.WorkerHeartbeat(
                id=row["id"],
                host=row["host"],
                pid=row["pid"],
                models=tuple(_loads(row["models"]) or ()),
                started_at=row["started_at"],
                last_seen_at=row["last_seen_at"],
                stopped_at=row["stopped_at"],
                stats=_loads(row["stats"]),
            )
            for row in rows
        ]

    # -- schema ---------------------------------------------------------------
    def schema_revision(self) -> tuple[str | None, str]:
        """(the database's migration revision, the newest this code knows);
        raises if the database cannot be reached."""
        with self.engine.connect() as conn:
            return engine_module.current_revision(conn), engine_module.head_revision()
