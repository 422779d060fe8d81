"""Webhook endpoints per API key, and what became of their deliveries."""

from __future__ import annotations

import builtins
import time

from batchgate import config
from batchgate.dialects import webhooks as wire
from batchgate.domain import errors, ids
from batchgate.domain import webhooks as wh
from batchgate.store import port
from batchgate.wire import webhook_urls


class WebhookService:
    def __init__(self, store: port.WebhookEndpoints, settings: config.WebhookSettings) -> None:
        self.store = store
        self.settings = settings

    def create(self, owner: str, body: wire.EndpointCreate) -> tuple[wh.Endpoint, str]:
        """A new endpoint; returns it and its signing secret (shown once)."""
        webhook_urls.parse(body.url)  # one httpx can send, with a plain host
        url = wh.check_url(
            body.url,
            allow_private=self.settings.allow_private_addresses,
            allowed_hosts=tuple(self.settings.allowed_hosts),
        )
        endpoint = wh.Endpoint(
            id=ids.new_webhook_endpoint_id(),
            owner=owner,
            url=url,
            event_types=tuple(body.event_types or wh.TERMINAL_EVENTS),
            progress_every_percent=body.progress_every_percent,
            description=body.description,
            created_at=time.time(),
        )
        secret = ids.new_webhook_secret()
        cap = self.settings.max_endpoints_per_key
        stored = self.store.create_webhook_endpoint(endpoint, secret, max_per_owner=cap)
        if stored is None:
            raise errors.InvalidRequest(
                f"this key already has {cap} webhook endpoints, the most this server allows "
                "([webhooks] max_endpoints_per_key); delete one first",
                param="url",
                code="too_many_webhook_endpoints",
            )
        return stored, secret

    def get(self, owner: str, endpoint_id: str) -> wh.Endpoint:
        endpoint = self.store.get_webhook_endpoint(endpoint_id, owner)
        if endpoint is None:
            raise errors.NotFound(
                f"no webhook endpoint with id {endpoint_id!r}", param="endpoint_id"
            )
        return endpoint

    def list(self, owner: str) -> list[wh.Endpoint]:
        return self.store.list_webhook_endpoints(owner)

    def delete(self, owner: str, endpoint_id: str) -> None:
        if not self.store.delete_webhook_endpoint(endpoint_id, owner, time.time()):
            raise errors.NotFound(
                f"no webhook endpoint with id {endpoint_id!r}", param="endpoint_id"
            )

    def deliveries(
        self,
        owner: str,
        endpoint_id: str,
        *,
        limit: int,
        after: str | None,
        status: str | None,
    ) -> tuple[builtins.list[wh.Delivery], bool]:
        self.get(owner, endpoint_id)
        if not 1 <= limit <= 1000:
            raise errors.InvalidRequest("limit must be between 1 and 1000", param="limit")
        wanted = None
        if status is not None:
            try:
                wanted = wh.DeliveryStatus(status)
            except ValueError:
                raise errors.InvalidRequest(
                    f"status must be one of: {', '.join(s.value for s in wh.DeliveryStatus)}",
                    param="status",
                ) from None
        return self.store.list_webhook_deliveries(
            endpoint_id, limit=limit, after=after, status=wanted
        )
