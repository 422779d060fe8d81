"""Figures over the whole store for operators: per-model queue and throughput,
batches by status, worker heartbeats, schema version. The database is the one
place that sees every worker on every host, so these are exact however many
processes share it."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from batchgate.domain import stats, workers
from batchgate.domain import upstream_jobs as uj
from batchgate.domain.states import BatchStatus, RequestState
from batchgate.store import engine as engine_module
from batchgate.store import tables
from batchgate.store.sql_common import _OPEN, _STATES, B, R, SqlBase, _dumps, _loads
from batchgate.store.sql_upstream_jobs import SERVED_STATE_VALUES

W = tables.workers

_QUEUED = RequestState.QUEUED.value


class Stats(SqlBase):
    def model_stats(
        self, now: float, *, window_seconds: float = 300.0, owner: str | None = None
    ) -> list[stats.ModelStats]:
        """Every model with an open request or one that ended in the window,
        by name; ``owner`` limits them to that key's batches. Three grouped
        reads in one transaction, each over an index that holds only what
        they count (open requests: ``ix_requests_lease`` on state; recent
        endings: ``ix_requests_finished``), so a scrape costs as much as the
        work in flight, however many finished rows are retained."""
        open_counts, recent, oldest = _model_queries(now, now - window_seconds, owner)
        with self._read() as conn:
            open_rows = conn.execute(open_counts).all()
            recent_rows = conn.execute(recent).all()
            oldest_at = {model: float(at) for model, at in conn.execute(oldest).all()}
        parts: dict[str, stats.ModelTally] = {}
        for model, state, count, waiting in open_rows:
            parts.setdefault(model, stats.ModelTally()).add(
                _STATES[state], int(count), waiting=int(waiting or 0)
            )
        for model, state, count, tokens_in, tokens_out, cost in recent_rows:
            parts.setdefault(model, stats.ModelTally()).add_recent(
                _STATES[state],
                int(count),
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

    def path_costs(self, since: float) -> list[stats.PathCost]:
        """One grouped read over the rows that ended since ``since``
        (``ix_requests_finished``), those with a route only."""
        query = (
            sa.select(
                R.c.model,
                R.c.route,
                sa.func.count(),
                sa.func.coalesce(sa.func.sum(R.c.cost), 0.0),
            )
            .where(
                R.c.finished_at >= since,
                R.c.route.is_not(None),
                R.c.state.in_(SERVED_STATE_VALUES),
            )
            .group_by(R.c.model, R.c.route)
            .order_by(R.c.model, R.c.route)
        )
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [
            stats.PathCost(model, uj.Path(route), int(count), float(billed))
            for model, route, count, billed in rows
        ]

    # -- workers --------------------------------------------------------------
    def record_worker(self, heartbeat: workers.WorkerHeartbeat) -> None:
        """Insert or refresh one worker's row (only that worker writes it)."""
        values = _worker_values(heartbeat)
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
        return [_heartbeat(row) for row in rows]

    def retire_workers(self, stopped_before: float) -> int:
        """Fold every worker that stopped and was last seen before
        ``stopped_before`` into the one retired row (their counters summed),
        so restarts do not pile up rows that every scrape reads. A stopped
        worker never writes its row again, so nothing is counted twice.
        Returns how many rows were folded."""
        done = (
            W.c.stopped_at.is_not(None)
            & (W.c.last_seen_at < stopped_before)
            & (W.c.id != workers.RETIRED_ID)
        )
        # Nearly every sweep finds nothing: find out with a read, so it does
        # not take SQLite's write lock for nothing.
        with self._read() as conn:
            if conn.execute(sa.select(W.c.id).where(done).limit(1)).first() is None:
                return 0
        with self._write() as conn:
            rows = conn.execute(sa.select(W).where(done).with_for_update()).mappings().all()
            if not rows:
                return 0
            retired = (
                conn.execute(sa.select(W).where(W.c.id == workers.RETIRED_ID).with_for_update())
                .mappings()
                .first()
            )
            folded = workers.retire(
                [_heartbeat(row) for row in rows],
                None if retired is None else _heartbeat(retired),
            )
            conn.execute(W.delete().where(W.c.id.in_([row["id"] for row in rows])))
            values = _worker_values(folded)
            if retired is None:
                conn.execute(W.insert().values(id=folded.id, **values))
            else:
                conn.execute(W.update().where(W.c.id == folded.id).values(**values))
        return len(rows)

    # -- schema ---------------------------------------------------------------
    def schema_revision(self) -> tuple[str | None, str]:
        """(the database's migration revision, the newest this code knows);
        raises if the database cannot be reached."""
        with self.engine.connect() as conn:
            return engine_module.current_revision(conn), engine_module.head_revision()


def _model_queries(
    now: float, recent_since: float, owner: str | None
) -> tuple[sa.Select[Any], sa.Select[Any], sa.Select[Any]]:
    """model_stats's three reads: open requests per (model, state) with how
    many wait on a backoff; requests that ended since ``recent_since``, with
    their usage; and each model's oldest queued batch."""
    open_counts = (
        sa.select(
            R.c.model,
            R.c.state,
            sa.func.count(),
            sa.func.sum(sa.case((R.c.not_before > now, 1), else_=0)),
        )
        .where(R.c.state.in_(_OPEN))
        .group_by(R.c.model, R.c.state)
    )
    recent = (
        sa.select(
            R.c.model,
            R.c.state,
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(R.c.input_tokens), 0),
            sa.func.coalesce(sa.func.sum(R.c.output_tokens), 0),
            sa.func.coalesce(sa.func.sum(R.c.cost), 0.0),
        )
        .where(R.c.finished_at >= recent_since, R.c.state.not_in(_OPEN))
        .group_by(R.c.model, R.c.state)
    )
    oldest = (
        sa.select(R.c.model, sa.func.min(B.c.created_at))
        .join(B, B.c.id == R.c.batch_id)
        .where(R.c.state == _QUEUED)
        .group_by(R.c.model)
    )
    if owner is not None:
        mine = sa.select(B.c.id).where(B.c.owner == owner).scalar_subquery()
        open_counts = open_counts.where(R.c.batch_id.in_(mine))
        recent = recent.where(R.c.batch_id.in_(mine))
        oldest = oldest.where(B.c.owner == owner)
    return open_counts, recent, oldest


def _worker_values(heartbeat: workers.WorkerHeartbeat) -> dict[str, Any]:
    return {
        "host": heartbeat.host,
        "pid": heartbeat.pid,
        "models": _dumps(list(heartbeat.models)),
        "started_at": heartbeat.started_at,
        "last_seen_at": heartbeat.last_seen_at,
        "stopped_at": heartbeat.stopped_at,
        "stats": _dumps(heartbeat.stats),
    }


def _heartbeat(row: Any) -> workers.WorkerHeartbeat:
    return workers.WorkerHeartbeat(
        id=row["id"],
        host=row["host"],
        pid=row["pid"],
        models=tuple(_loads(row["models"]) or ()),
        started_at=row["started_at"],
        last_seen_at=row["last_seen_at"],
        stopped_at=row["stopped_at"],
        stats=_loads(row["stats"]),
    )
