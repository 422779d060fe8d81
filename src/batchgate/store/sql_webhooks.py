"""Webhooks: endpoints, the outbox of deliveries, and leasing them to workers.

:func:`add_batch_events` is called by every write that ends a batch, inside
its transaction: the event is durable exactly when the batch's end is.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from batchgate.domain import pages
from batchgate.domain import webhooks as wh
from batchgate.domain.states import OPEN_REQUEST_STATES, BatchStatus
from batchgate.store import tables
from batchgate.store.sql_common import B, R, SqlBase

E = tables.webhook_endpoints
K = tables.api_keys
D = tables.webhook_deliveries

_OPEN = [state.value for state in OPEN_REQUEST_STATES]


def add_batch_events(
    conn: sa.Connection, ended: Sequence[tuple[str, BatchStatus]], now: float
) -> None:
    """Write the outbox rows for batches that just ended: one event per
    batch, delivered to each of its owner's endpoints subscribed to it."""
    if not ended:
        return
    owners = dict(
        conn.execute(
            sa.select(B.c.id, B.c.owner).where(B.c.id.in_([batch_id for batch_id, _ in ended]))
        ).all()
    )
    endpoints = _endpoints_of(conn, set(owners.values()))
    rows = [
        _delivery_row(delivery)
        for batch_id, status in ended
        for delivery in wh.ended_deliveries(
            batch_id, status, endpoints.get(owners[batch_id], []), now
        )
    ]
    if rows:
        conn.execute(D.insert(), rows)


def purge_batch_deliveries(conn: sa.Connection, batch_id: str) -> None:
    """Drop a purged batch's settled deliveries (delivered, failed,
    discarded); one still being retried stays until it settles."""
    conn.execute(
        D.delete().where(D.c.batch_id == batch_id, D.c.status != wh.DeliveryStatus.PENDING.value)
    )


def _delivery_row(delivery: wh.NewDelivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "endpoint_id": delivery.endpoint_id,
        "event_id": delivery.event_id,
        "event_type": delivery.event_type.value,
        "batch_id": delivery.batch_id,
        "dedupe_key": delivery.dedupe_key,
        "event_data": orjson.dumps(delivery.data).decode(),
        "status": wh.DeliveryStatus.PENDING.value,
        "attempts": 0,
        "created_at": delivery.created_at,
        "next_attempt_at": delivery.created_at,
    }


def _endpoints_of(conn: sa.Connection, owners: set[str]) -> dict[str, list[wh.Endpoint]]:
    if not owners:
        return {}
    found: dict[str, list[wh.Endpoint]] = {}
    for row in conn.execute(
        sa.select(E).where(E.c.owner.in_(sorted(owners)), E.c.deleted_at.is_(None))
    ).mappings():
        found.setdefault(row["owner"], []).append(_endpoint(row))
    return found


def _endpoint(row: Any) -> wh.Endpoint:
    return wh.Endpoint(
        id=row["id"],
        owner=row["owner"],
        url=row["url"],
        event_types=tuple(wh.EventType(t) for t in orjson.loads(row["event_types"])),
        progress_every_percent=row["progress_every_percent"],
        description=row["description"],
        created_at=row["created_at"],
    )


def _delivery(row: Any) -> wh.Delivery:
    return wh.Delivery(
        id=row["id"],
        endpoint_id=row["endpoint_id"],
        event_id=row["event_id"],
        event_type=wh.EventType(row["event_type"]),
        batch_id=row["batch_id"],
        data=orjson.loads(row["event_data"]),
        status=wh.DeliveryStatus(row["status"]),
        attempts=row["attempts"],
        created_at=row["created_at"],
        next_attempt_at=row["next_attempt_at"],
        last_attempt_at=row["last_attempt_at"],
        last_status_code=row["last_status_code"],
        last_error=row["last_error"],
        delivered_at=row["delivered_at"],
    )


def _lease_due(
    conn: sa.Connection, due: Any, worker_id: str, n: int, lease_until: float, now: float
) -> Sequence[Any]:
    """Lease the first ``n`` due deliveries in one statement (rows another
    deliverer has locked are skipped), counting the attempt."""
    picked = (
        sa.select(D.c.id)
        .where(due)
        .order_by(D.c.next_attempt_at, D.c.id)
        .limit(n)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    return conn.execute(
        D.update()
        .where(D.c.id.in_(picked))
        .values(
            lease_owner=worker_id,
            lease_expires_at=lease_until,
            attempts=D.c.attempts + 1,
            last_attempt_at=now,
        )
        .returning(
            D.c.id,
            D.c.endpoint_id,
            D.c.event_id,
            D.c.event_type,
            D.c.batch_id,
            D.c.event_data,
            D.c.attempts,
            D.c.created_at,
        )
    ).all()


def _targets(conn: sa.Connection, endpoint_ids: set[str]) -> dict[str, tuple[str, str]]:
    """Each endpoint's (url, secret)."""
    if not endpoint_ids:
        return {}
    rows = conn.execute(
        sa.select(E.c.id, E.c.url, E.c.secret).where(E.c.id.in_(endpoint_ids))
    ).all()
    return {row.id: (row.url, row.secret) for row in rows}


def _event(row: Any) -> wh.Event:
    return wh.Event(
        row.event_id,
        wh.EventType(row.event_type),
        row.batch_id,
        row.created_at,
        orjson.loads(row.event_data),
    )


class Webhooks(SqlBase):
    """Webhook endpoints and their deliveries."""

    # -- endpoints ------------------------------------------------------------
    def create_webhook_endpoint(
        self, endpoint: wh.Endpoint, secret: str, max_per_owner: int | None = None
    ) -> wh.Endpoint | None:
        """Store a new endpoint; None (nothing stored) when its owner already
        has ``max_per_owner`` live ones. The owner's key row is locked first
        (SQLite's ``BEGIN IMMEDIATE`` holds the database already), so
        concurrent creates for one key are counted one after the other."""
        with self._write() as conn:
            if max_per_owner is not None:
                conn.execute(sa.select(K.c.id).where(K.c.id == endpoint.owner).with_for_update())
                live = conn.execute(
                    sa.select(sa.func.count())
                    .select_from(E)
                    .where(E.c.owner == endpoint.owner, E.c.deleted_at.is_(None))
                ).scalar_one()
                if live >= max_per_owner:
                    return None
            conn.execute(
                E.insert().values(
                    id=endpoint.id,
                    owner=endpoint.owner,
                    url=endpoint.url,
                    event_types=orjson.dumps([t.value for t in endpoint.event_types]).decode(),
                    progress_every_percent=endpoint.progress_every_percent,
                    description=endpoint.description,
                    secret=secret,
                    created_at=endpoint.created_at,
                )
            )
        return endpoint

    def get_webhook_endpoint(self, endpoint_id: str, owner: str) -> wh.Endpoint | None:
        with self._read() as conn:
            row = (
                conn.execute(
                    sa.select(E).where(
                        E.c.id == endpoint_id, E.c.owner == owner, E.c.deleted_at.is_(None)
                    )
                )
                .mappings()
                .first()
            )
        return None if row is None else _endpoint(row)

    def list_webhook_endpoints(self, owner: str) -> list[wh.Endpoint]:
        with self._read() as conn:
            return _endpoints_of(conn, {owner}).get(owner, [])

    def delete_webhook_endpoint(self, endpoint_id: str, owner: str, now: float) -> bool:
        """Delete the endpoint; its deliveries not yet made are discarded."""
        discard = (
            D.update()
            .where(
                D.c.endpoint_id == endpoint_id,
                D.c.status == wh.DeliveryStatus.PENDING.value,
            )
            .values(
                status=wh.DeliveryStatus.DISCARDED.value,
                next_attempt_at=None,
                last_error="the endpoint was deleted",
            )
        )
        return self._soft_delete(E, endpoint_id, owner, now, discard)

    # -- deliveries -----------------------------------------------------------
    def list_webhook_deliveries(
        self,
        endpoint_id: str,
        *,
        limit: int,
        after: str | None = None,
        status: wh.DeliveryStatus | None = None,
    ) -> tuple[list[wh.Delivery], bool]:
        """Newest first; ``after`` pages towards older ones."""
        query = sa.select(D).where(D.c.endpoint_id == endpoint_id)
        if status is not None:
            query = query.where(D.c.status == status.value)
        cursor = sa.tuple_(D.c.created_at, D.c.id)
        with self._read() as conn:
            if after:
                pivot = conn.execute(
                    sa.select(D.c.created_at, D.c.id).where(
                        D.c.id == after, D.c.endpoint_id == endpoint_id
                    )
                ).first()
                if pivot is not None:
                    query = query.where(cursor < sa.tuple_(*pivot))
            query = query.order_by(D.c.created_at.desc(), D.c.id.desc()).limit(limit + 1)
            rows, more = pages.page(conn.execute(query).mappings().all(), limit)
        return [_delivery(row) for row in rows], more

    def claim_webhook_deliveries(
        self, worker_id: str, n: int, now: float, lease_seconds: float
    ) -> list[wh.ClaimedDelivery]:
        """Lease up to ``n`` due deliveries (pending, due, not leased or with
        a lapsed lease) for one attempt each."""
        due = (
            (D.c.status == wh.DeliveryStatus.PENDING.value)
            & (D.c.next_attempt_at <= now)
            & (D.c.lease_expires_at.is_(None) | (D.c.lease_expires_at < now))
        )
        with self._read() as conn:
            # Most polls find nothing: ask before taking SQLite's write lock.
            if conn.execute(sa.select(D.c.id).where(due).limit(1)).first() is None:
                return []
        with self._write() as conn:
            rows = _lease_due(conn, due, worker_id, n, now + lease_seconds, now)
            targets = _targets(conn, {row.endpoint_id for row in rows})
        return [
            wh.ClaimedDelivery(
                id=row.id,
                url=targets[row.endpoint_id][0],
                secret=targets[row.endpoint_id][1],
                event=_event(row),
                attempt=row.attempts,
                created_at=row.created_at,
            )
            for row in sorted(rows, key=lambda r: r.id)
        ]

    def record_webhook_attempt(self, result: wh.AttemptResult, now: float) -> bool:
        """Write one attempt's outcome, fenced on the lease (a worker whose
        lease lapsed, and whose delivery was retried since, changes nothing)."""
        values: dict[str, Any] = {
            "status": result.status.value,
            "lease_owner": None,
            "lease_expires_at": None,
            "next_attempt_at": result.next_attempt_at,
            "last_status_code": result.status_code,
            "last_error": result.error,
        }
        if result.status is wh.DeliveryStatus.DELIVERED:
            values["delivered_at"] = now
        with self._write() as conn:
            applied = conn.execute(
                D.update()
                .where(
                    D.c.id == result.delivery_id,
                    D.c.lease_owner == result.worker_id,
                    D.c.attempts == result.attempt,
                    D.c.status == wh.DeliveryStatus.PENDING.value,
                )
                .values(**values)
            ).rowcount
        return bool(applied)

    def add_progress_events(self, now: float | None = None) -> int:
        """For running batches whose owner has an endpoint asking for
        progress, write a ``batch.progress`` event for the highest step
        reached, once per step (the unique dedupe key makes concurrent sweeps
        harmless). Returns how many were written."""
        now = time.time() if now is None else now
        with self._read() as conn:
            endpoints = [
                _endpoint(row)
                for row in conn.execute(
                    sa.select(E).where(
                        E.c.progress_every_percent.is_not(None), E.c.deleted_at.is_(None)
                    )
                ).mappings()
            ]
            if not endpoints:
                return 0
            owners = sorted({e.owner for e in endpoints})
            open_count = (
                sa.select(sa.func.count())
                .where(R.c.batch_id == B.c.id, R.c.state.in_(_OPEN))
                .scalar_subquery()
            )
            batches = conn.execute(
                sa.select(B.c.id, B.c.owner, B.c.total, open_count).where(
                    B.c.owner.in_(owners), B.c.status == BatchStatus.IN_PROGRESS.value
                )
            ).all()
        by_owner: dict[str, list[wh.Endpoint]] = {}
        for endpoint in endpoints:
            by_owner.setdefault(endpoint.owner, []).append(endpoint)
        rows = [
            _delivery_row(delivery)
            for batch_id, owner, total, still_open in batches
            for delivery in wh.progress_deliveries(
                batch_id, total, total - int(still_open), by_owner[owner], now
            )
        ]
        if not rows:
            return 0
        insert = (
            postgresql.insert(D) if self.is_postgres else sqlite.insert(D)
        ).on_conflict_do_nothing()
        with self._write() as conn:
            return int(conn.execute(insert, rows).rowcount or 0)
