"""The queue: claims, leases, fenced outcome writes, and the sweeps."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from batchgate.domain import batch as batch_model
from batchgate.domain import failures, fairness, retry, states
from batchgate.domain.states import (
    BatchStatus,
    RequestState,
)
from batchgate.store import sql_webhooks
from batchgate.store.sql_common import (
    _OPEN,
    B,
    R,
    SqlBase,
    _dump_error,
    _dumps,
    _end_batches,
    _open_requests_locked,
    _state_in,
    _status_in,
)


class Queue(SqlBase):
    """Requests as work: leased, written back fenced, swept."""

    # -- the queue ------------------------------------------------------------
    def claim(
        self,
        model: str,
        n: int,
        worker_id: str,
        now: float,
        lease_seconds: float,
        route: str | None = None,
    ) -> list[batch_model.ClaimedRequest]:
        """Lease up to ``n`` queued requests of ``model`` whose route is
        ``route`` (None: unset), shared fairly across keys and batches; each
        batch's share is taken in one statement."""
        if n <= 0:
            return []
        lease = _Lease(worker_id, now, now + lease_seconds, route)
        claimed: list[batch_model.ClaimedRequest] = []
        with self._write() as conn:
            candidates = _ready_batches(conn, model, lease)
            for batch_id, share in fairness.fair_shares(candidates, n).items():
                claimed.extend(_lease_share(conn, batch_id, model, share, lease))
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
        with self._write() as conn:
            rows = conn.execute(
                R.update()
                .where(R.c.id.in_(locked_running_rows(wanted, worker_id)))
                .values(lease_expires_at=now + lease_seconds)
                .returning(R.c.id)
            ).all()
        return {row.id for row in rows}

    def mark_generating(self, worker_id: str, request_ids: Iterable[int], now: float) -> None:
        """The backend calls of these requests started: they are generating,
        no longer just claimed. Rows this worker no longer holds are left."""
        wanted = sorted(set(request_ids))
        if not wanted:
            return
        locked = locked_running_rows(wanted, worker_id)
        with self._write() as conn:
            conn.execute(R.update().where(R.c.id.in_(locked)).values(generating_at=now))

    def held_request_ids(self, worker_id: str) -> set[int]:
        with self._read() as conn:
            rows = conn.execute(
                sa.select(R.c.id).where(
                    R.c.lease_owner == worker_id, R.c.state == RequestState.RUNNING.value
                )
            ).all()
        return {row.id for row in rows}

    def record_outcomes(self, outcomes: Sequence[batch_model.Outcome], now: float) -> list[bool]:
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
                    "b_error": _dump_error(outcome.error),
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
                        "b_cached_tokens": outcome.cached_tokens,
                        "b_reasoning_tokens": outcome.reasoning_tokens,
                        "b_cost": outcome.cost,
                        "b_now": now,
                        "b_route": outcome.route,
                    }
                applied[outcome.request_id] = conn.execute(statement, params).rowcount == 1
        return [applied[outcome.request_id] for outcome in outcomes]

    def requeue_lost_leases(self, now: float, policy: retry.RetryPolicy) -> int:
        """Requests whose worker stopped heartbeating are retried or, as
        ``policy`` decides, end errored (domain/retry.py's ``LOST_LEASE``)."""
        lost = _state_in(states.request_sources(RequestState.QUEUED, RequestState.ERRORED)) & (
            R.c.lease_expires_at < now
        )
        with self._write() as conn:
            rows = conn.execute(
                sa.select(R.c.id, R.c.attempts).where(lost).order_by(R.c.id).with_for_update()
            ).all()
            for row in rows:
                decision = policy.decide(retry.LOST_LEASE, row.attempts)
                values: dict[str, object] = {"lease_owner": None, "lease_expires_at": None}
                if isinstance(decision, retry.GiveUp):
                    values.update(
                        state=RequestState.ERRORED.value,
                        finished_at=now,
                        error=_dump_error(failures.lost_lease(row.attempts)),
                    )
                else:
                    values.update(
                        state=RequestState.QUEUED.value,
                        not_before=now + decision.delay,
                        attempts=row.attempts - int(decision.refund_attempt),
                    )
                conn.execute(R.update().where(R.c.id == row.id, lost).values(**values))
        return len(rows)

    def expire_batches(self, now: float) -> list[str]:
        """Batches past their completion window: unfinished requests end
        expired, finished ones are kept, the batch is expired."""
        expirable = _status_in(states.sources(BatchStatus.EXPIRED))
        with self._write() as conn:
            ids = [
                row.id
                for row in conn.execute(
                    sa.select(B.c.id).where(expirable, B.c.expires_at <= now)
                ).all()
            ]
            expired: list[str] = []
            for batch_id in ids:
                # Guarded on the status, so of two concurrent sweeps only one
                # ends the batch (and creates its result files).
                flipped = conn.execute(
                    B.update()
                    .where(B.c.id == batch_id, expirable)
                    .values(status=BatchStatus.EXPIRED.value, expired_at=now)
                ).rowcount
                if not flipped:
                    continue
                conn.execute(
                    R.update()
                    .where(R.c.id.in_(_open_requests_locked(batch_id, RequestState.EXPIRED)))
                    .values(state=RequestState.EXPIRED.value, lease_owner=None, finished_at=now)
                )
                expired.append(batch_id)
            _end_batches(conn, expired, now)
            sql_webhooks.add_batch_events(
                conn, [(batch_id, BatchStatus.EXPIRED) for batch_id in expired], now
            )
        return expired

    def finalize_batches(self, now: float, batch_ids: Iterable[str] | None = None) -> list[str]:
        """Batches with no open request left settle (domain/states.py's
        ``SETTLED_BATCH_STATUS``): in_progress -> completed, cancelling -> cancelled."""
        open_requests = (
            sa.select(sa.literal(1)).where(R.c.batch_id == B.c.id, R.c.state.in_(_OPEN)).exists()
        )
        query = sa.select(B.c.id, B.c.status).where(
            _status_in(states.SETTLED_BATCH_STATUS),
            ~open_requests,
        )
        if batch_ids is not None:
            wanted = list(set(batch_ids))
            if not wanted:
                return []
            query = query.where(B.c.id.in_(wanted))
        ended: list[str] = []
        events: list[tuple[str, BatchStatus]] = []
        with self._write() as conn:
            for row in conn.execute(query).all():
                target = states.SETTLED_BATCH_STATUS[BatchStatus(row.status)]
                values = {"status": target.value, batch_model.STATUS_STAMPS[target]: now}
                if target is BatchStatus.COMPLETED:
                    # OpenAI clients read finalizing_at; results are rendered
                    # on demand, so finalizing takes no time at all.
                    values["finalizing_at"] = now
                flipped = conn.execute(
                    B.update().where(B.c.id == row.id, B.c.status == row.status).values(**values)
                ).rowcount
                if flipped:
                    ended.append(row.id)
                    events.append((row.id, target))
            _end_batches(conn, ended, now)
            sql_webhooks.add_batch_events(conn, events, now)
        return ended


# The two fenced outcome writes, built once: record_outcomes runs them for
# every finished attempt, and building statements per row cost more than
# executing them.
_FENCE = (
    (R.c.id == sa.bindparam("b_id"))
    & (R.c.lease_owner == sa.bindparam("b_owner"))
    & (R.c.attempts == sa.bindparam("b_attempt"))
    # Only a running request has an attempt to end: an outcome moves it to
    # any of these (domain/states.py's table gives the states it may be in).
    & _state_in(
        states.request_sources(RequestState.QUEUED, RequestState.SUCCEEDED, RequestState.ERRORED)
    )
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
        cached_tokens=sa.bindparam("b_cached_tokens"),
        reasoning_tokens=sa.bindparam("b_reasoning_tokens"),
        cost=sa.bindparam("b_cost"),
        finished_at=sa.bindparam("b_now"),
        # Which path served a provider-batch model's row; None keeps it.
        route=sa.func.coalesce(sa.bindparam("b_route", type_=sa.String), R.c.route),
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


# -- claim's steps ------------------------------------------------------------
_CLAIMABLE = _state_in(states.request_sources(RequestState.RUNNING))


@dataclasses.dataclass(frozen=True)
class _Lease:
    worker_id: str
    now: float
    expires_at: float
    route: str | None = None


def _ready(batch_id: Any, model: str, lease: _Lease) -> Any:
    """The batch's requests of ``model`` a claim may take now (backoff over)
    on its route (a provider-batch model's rows with no route are its
    jobs', domain/upstream_jobs.py)."""
    routed = R.c.route.is_(None) if lease.route is None else R.c.route == lease.route
    return (
        (R.c.batch_id == batch_id)
        & (R.c.model == model)
        & _CLAIMABLE
        & (R.c.not_before <= lease.now)
        & routed
    )


def _ready_batches(conn: sa.Connection, model: str, lease: _Lease) -> list[fairness.Candidate]:
    """The running batches with work for ``model``, as fairness candidates."""
    has_work = sa.select(sa.literal(1)).where(_ready(B.c.id, model, lease)).exists()
    rows = conn.execute(
        sa.select(B.c.id, B.c.owner, B.c.last_claimed_at).where(
            B.c.status == BatchStatus.IN_PROGRESS.value, has_work
        )
    ).all()
    return [fairness.Candidate(row.id, row.owner, row.last_claimed_at) for row in rows]


def _lease_share(
    conn: sa.Connection, batch_id: str, model: str, share: int, lease: _Lease
) -> list[batch_model.ClaimedRequest]:
    """Lease the batch's first ``share`` ready requests in one statement
    (rows another worker has locked are skipped, not waited for), and mark
    the batch served now, for fairness."""
    picked = (
        sa.select(R.c.id)
        .where(_ready(batch_id, model, lease))
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
            lease_owner=lease.worker_id,
            lease_expires_at=lease.expires_at,
            attempts=R.c.attempts + 1,
            started_at=lease.now,
            generating_at=None,
        )
        .returning(R.c.id, R.c.batch_id, R.c.custom_id, R.c.model, R.c.params, R.c.attempts)
    ).all()
    if rows:
        conn.execute(B.update().where(B.c.id == batch_id).values(last_claimed_at=lease.now))
    return [
        batch_model.ClaimedRequest(
            id=row.id,
            batch_id=row.batch_id,
            custom_id=row.custom_id,
            model=row.model,
            params=row.params,
            attempt=row.attempts,
        )
        for row in rows
    ]


def locked_running_rows(wanted: list[int], worker_id: str) -> sa.ScalarSelect[Any]:
    """The ids among ``wanted`` that ``worker_id`` still runs, locked FOR
    UPDATE in id order, like record_outcomes, so a heartbeat, a
    mark_generating and a result write of the same worker (or an upstream
    job's moves of its rows, sql_upstream_jobs) cannot deadlock on
    PostgreSQL."""
    return (
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
