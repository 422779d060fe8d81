"""Webhook endpoints and the outbox, in memory (port.WebhookEndpoints,
port.WebhookOutbox). The outbox rows a batch's end writes are added by
MemoryTables._add_batch_event, under the caller's lock, as the SQL store
writes them in the transaction that ends the batch."""

from __future__ import annotations

import dataclasses
import time

from batchgate.domain import pages
from batchgate.domain import webhooks as wh
from batchgate.testing.memory.tables import MemoryTables


class MemoryWebhookEndpoints(MemoryTables):
    """port.WebhookEndpoints in dictionaries."""

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


class MemoryWebhookOutbox(MemoryTables):
    """port.WebhookOutbox: leased deliveries, fenced attempt writes."""

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

        now = time.time() if now is None else now
        with self._lock:
            return sum(
                self._insert(delivery)
                for batch_id, owner, total, done in self._running_batches()
                for delivery in wh.progress_deliveries(
                    batch_id, total, done, self._live_endpoints(owner), now
                )
            )
