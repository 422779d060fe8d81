"""``/v1/webhook_endpoints`` wire shapes (pure): the create body, and the
endpoint and delivery objects in OpenAI's list conventions."""

from __future__ import annotations

from typing import Any

import orjson
import pydantic

from batchgate.dialects import input_limits, openai_objects, paths
from batchgate.domain import webhooks as wh


class EndpointCreate(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    url: input_limits.SafeStr = pydantic.Field(
        min_length=1, max_length=input_limits.MAX_WEBHOOK_URL_CHARS
    )
    # Default: every terminal event.
    event_types: list[wh.EventType] | None = pydantic.Field(default=None, min_length=1)
    # Opt in to ``batch.progress`` events every N % of a batch's requests.
    progress_every_percent: int | None = pydantic.Field(
        default=None, ge=wh.MIN_PROGRESS_PERCENT, le=99
    )
    description: input_limits.SafeStr | None = pydantic.Field(
        default=None, max_length=input_limits.MAX_WEBHOOK_DESCRIPTION_CHARS
    )


def parse_create(body: bytes) -> EndpointCreate:
    parsed = paths.parse_body(EndpointCreate, body)
    if parsed.event_types and wh.EventType.BATCH_PROGRESS in parsed.event_types:
        # Progress is opted into by its interval, not listed.
        parsed.event_types = [e for e in parsed.event_types if e is not wh.EventType.BATCH_PROGRESS]
        if parsed.progress_every_percent is None:
            parsed.progress_every_percent = 10
    return parsed


def event_body(event: wh.Event) -> dict[str, Any]:
    """An event in OpenAI's webhook event shape: ``{"id": "evt_…", "object":
    "event", "created_at", "type": "batch.completed", "data": {"id":
    "batch_…", …}}``."""
    return {
        "id": event.id,
        "object": "event",
        "created_at": int(event.created_at),
        "type": event.type.value,
        "data": {"id": event.batch_id, **event.data},
    }


def event_payload(event: wh.Event) -> bytes:
    """The bytes a delivery signs and sends. The event is stored as data and
    rendered at each attempt; the rendering is a pure function of it, so
    every attempt signs and sends the same bytes."""
    return orjson.dumps(event_body(event))


def render_endpoint(endpoint: wh.Endpoint, secret: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": endpoint.id,
        "object": "webhook_endpoint",
        "url": endpoint.url,
        "event_types": [e.value for e in endpoint.event_types],
        "progress_every_percent": endpoint.progress_every_percent,
        "description": endpoint.description,
        "created_at": int(endpoint.created_at),
    }
    if secret is not None:
        body["secret"] = secret  # only in the answer to create: shown once
    return body


def render_delivery(delivery: wh.Delivery) -> dict[str, Any]:
    def seconds(value: float | None) -> int | None:
        return None if value is None else int(value)

    return {
        "id": delivery.id,
        "object": "webhook_delivery",
        "endpoint_id": delivery.endpoint_id,
        "event_id": delivery.event_id,
        "event_type": delivery.event_type.value,
        "batch_id": delivery.batch_id,
        "status": delivery.status.value,
        "attempts": delivery.attempts,
        "created_at": seconds(delivery.created_at),
        "last_attempt_at": seconds(delivery.last_attempt_at),
        "next_attempt_at": seconds(delivery.next_attempt_at)
        if delivery.status is wh.DeliveryStatus.PENDING
        else None,
        "delivered_at": seconds(delivery.delivered_at),
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
        "event": event_body(delivery.event),
    }


def render_list(data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return openai_objects.list_page(data, has_more)


def render_deleted(endpoint_id: str) -> dict[str, Any]:
    return {"id": endpoint_id, "object": "webhook_endpoint", "deleted": True}
