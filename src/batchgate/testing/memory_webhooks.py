"""The webhook part of the in-memory JobStore: endpoints and the outbox.

Kept apart from memory_store.py; the store calls :meth:`_add_batch_event`
wherever it ends a batch, under its lock, as the SQL store writes the
delivery row in the transaction that ends the batch.
"""

from __future__ import annotations

import dataclasses
import threading

from batchgate.domain import pages
from batchgate.domain import webhooks as wh
from batchgate.domain.states import BatchStatus


@dataclasses.dataclass
class _DeliveryRow:
    delivery: wh.Delivery
    dedupe_key: str
    lease_owner: str | None = None
    lease_expires_at: float | None = None


class MemoryWebhooks:
    _lock: threading.RLock

    def __init__(self) -> None:
        self._endpoints: dict[str, tuple[wh.Endpoint, str]] = {}  # id -> (endpoint, secret)
        self._deleted_endpoints: set[str] = set()
        self._deliveries: dict[str, _DeliveryRow] = {}

    # The store says which running batches exist and how far along they are.
    def _running_batches(self) -> list[tuple[str, str, int, int]]:
        """(batch id, owner, total, finished) of every in-progress batch."""
        raise NotImplementedError

    # -- written when a batch ends ------------------------------------------------
    def _add_batch_event(self, batch_id: str, owner: str, status: BatchStatus, now: float) -> None:
        for delivery in wh.ended_deliveries(batch_id, status, self._live_endpoints(owner), now):
            self._insert(delivery)

    def _insert(self, new: wh.NewDelivery) -> bool:
        """Add an outbox row unless its (endpoint, batch, dedupe key) exists."""
        key = (new.endpoint_id, new.batch_id, new.dedupe_key)
        if any(
            (r.delivery.endpoint_id, r.delivery.batch_id, r.dedupe_key) == key
            for r in self._deliveries.values()
        ):
            return False
        delivery = wh.Delivery(
            id=new.id,
            endpoint_id=new.endpoint_id,
            event_id=new.event_id,
            event_type=new.event_type,
            batch_id=new.batch_id,
            data=dict(new.data),
            status=wh.DeliveryStatus.PENDING,
            attempts=0,
            created_at=new.created_at,
            next_attempt_at=new.created_at,
            last_attempt_at=None,
            last_status_code=None,
            last_error=None,
            delivered_at=None,
        )
        self._deliveries[delivery.id] = _DeliveryRow(delivery, new.dedupe_key)
        return True

    def _purge_batch_deliveries(self, batch_id: str) -> None:
        """As the SQL store's retention purge: settled deliveries go."""
        for delivery_id, row in list(self._deliveries.items()):
            if (
                row.delivery.batch_id == batch_id
                and row.delivery.status is not wh.DeliveryStatus.PENDING
            ):
                del self._deliveries[delivery_id]

    def _live_endpoints(self, owner: str) -> list[wh.Endpoint]:
        return [
            endpoint
            for endpoint, _ in self._endpoints.values()
            if endpoint.owner == owner and endpoint.id not in self._deleted_endpoints
        ]

    # -- endpoints ----------------------------------------------------------------
    def create_webhook_endpoint(
        self, endpoint: wh.Endpoint, secret: str, max_per_owner: int | None = None
    ) -> wh.Endpoint | None:
        with self._lock:
            live = len(self._live_endpoints(endpoint.owner))
            if max_per_owner is not None and live >= max_per_owner:
                return None
            self._endpoints[endpoint.id] = (endpoint, secret)
        return endpoint

    def get_webhook_endpoint(self, endpoint_id: str, owner: str) -> wh.Endpoint | None:
        with self._lock:
            found = self._endpoints.get(endpoint_id)
            if found is None or found[0].owner != owner or endpoint_id in self._deleted_endpoints:
                return None
            return found[0]

    def list_webhook_endpoints(self, owner: str) -> list[wh.Endpoint]:
        with self._lock:
            return self._live_endpoints(owner)

    def delete_webhook_endpoint(self, endpoint_id: str, owner: str, now: float) -> bool:
        with self._lock:
            if self.get_webhook_endpoint(endpoint_id, owner) is None:
                return False
            self._deleted_endpoints.add(endpoint_id)
            for row in self._deliveries.values():
                if (
                    row.delivery.endpoint_id == endpoint_id
                    and row.delivery.status is wh.DeliveryStatus.PENDING
                ):
                    row.delivery = dataclasses.replace(
                        row.delivery,
                        status=wh.DeliveryStatus.DISCARDED,
                        next_attempt_at=None,
                        last_error="the endpoint was deleted",
                    )
            return True

    # -- deliveries ---------------------------------------------------------------
    def list_webhook_deliveries(
        self,
        endpoint_id: str,
        *,
        limit: int,
        after: str | None = None,
        status: wh.DeliveryStatus | None = None,
    ) -> tuple[list[wh.Delivery], bool]:
        with self._lock:
            rows = sorted(
                (
                    r.delivery
                    for r in self._deliveries.values()
                    if r.delivery.endpoint_id == endpoint_id
                    and (status is None or r.delivery.status is status)
                ),
                key=lambda d: (d.created_at, d.id),
                reverse=True,
            )
            pivot = self._deliveries.get(after) if after else None
        if pivot is not None:
            cut = (pivot.delivery.created_at, pivot.delivery.id)
            rows = [d for d in rows if (d.created_at, d.id) < cut]
        return pages.page(rows, limit)

    def claim_webhook_deliveries(
        self, worker_id: str, n: int, now: float, lease_seconds: float
    ) -> list[wh.ClaimedDelivery]:
        claimed: list[wh.ClaimedDelivery] = []
        with self._lock:
            due = sorted(
                (
                    r
                    for r in self._deliveries.values()
                    if r.delivery.status is wh.DeliveryStatus.PENDING
                    and r.delivery.next_attempt_at is not None
                    and r.delivery.next_attempt_at <= now
                    and (r.lease_expires_at is None or r.lease_expires_at < now)
                ),
                key=lambda r: (r.delivery.next_attempt_at or 0.0, r.delivery.id),
            )[: max(n, 0)]
            for row in due:
                row.lease_owner = worker_id
                row.lease_expires_at = now + lease_seconds
                row.delivery = dataclasses.replace(
                    row.delivery, attempts=row.delivery.attempts + 1, last_attempt_at=now
                )
                endpoint, secret = self._endpoints[row.delivery.endpoint_id]
                claimed.append(
                    wh.ClaimedDelivery(
                        id=row.delivery.id,
                        url=endpoint.url,
                        secret=secret,
                        event=row.delivery.event,
                        attempt=row.delivery.attempts,
                        created_at=row.delivery.created_at,
                    )
                )
        return sorted(claimed, key=lambda d: d.id)

    def record_webhook_attempt(self, result: wh.AttemptResult, now: float) -> bool:
        with self._lock:
            row = self._deliveries.get(result.delivery_id)
            if (
                row is None
                or row.lease_owner != result.worker_id
                or row.delivery.attempts != result.attempt
                or row.delivery.status is not wh.DeliveryStatus.PENDING
            ):
                return False
            row.lease_owner = None
            row.lease_expires_at = None
            row.delivery = dataclasses.replace(
                row.delivery,
                status=result.status,
                next_attempt_at=result.next_attempt_at,
                last_status_code=result.status_code,
                last_error=result.error,
                delivered_at=now if result.status is wh.DeliveryStatus.DELIVERED else None,
            )
            return True

    def add_progress_events(self, now: float | None = None) -> int:
        import time

        now = time.time() if now is None else now
        with self._lock:
            return sum(
                self._insert(delivery)
                for batch_id, owner, total, done in self._running_batches()
                for delivery in wh.progress_deliveries(
                    batch_id, total, done, self._live_endpoints(owner), now
                )
            )
