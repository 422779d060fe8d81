"""``/v1/webhook_endpoints``: where a key's batch events are sent, and what
became of each delivery. Every key manages its own endpoints."""

from __future__ import annotations

import fastapi

from batchgate.api import common
from batchgate.api.deps import CallerDep, ServicesDep
from batchgate.dialects import webhooks as wire

router = fastapi.APIRouter(prefix="/v1/webhook_endpoints", tags=["webhooks"])


@router.post("")
def create_endpoint(
    body: common.SmallBody, caller: CallerDep, services: ServicesDep
) -> common.JsonResponse:
    endpoint, secret = services.webhooks.create(caller.id, wire.parse_create(body))
    return common.JsonResponse(wire.render_endpoint(endpoint, secret))


@router.get("")
def list_endpoints(caller: CallerDep, services: ServicesDep) -> common.JsonResponse:
    data = [wire.render_endpoint(e) for e in services.webhooks.list(caller.id)]
    return common.JsonResponse(wire.render_list(data, has_more=False))


@router.get("/{endpoint_id}")
def retrieve_endpoint(
    endpoint_id: str, caller: CallerDep, services: ServicesDep
) -> common.JsonResponse:
    return common.JsonResponse(wire.render_endpoint(services.webhooks.get(caller.id, endpoint_id)))


@router.delete("/{endpoint_id}")
def delete_endpoint(
    endpoint_id: str, caller: CallerDep, services: ServicesDep
) -> common.JsonResponse:
    services.webhooks.delete(caller.id, endpoint_id)
    return common.JsonResponse(wire.render_deleted(endpoint_id))


@router.get("/{endpoint_id}/deliveries")
def list_deliveries(
    endpoint_id: str,
    caller: CallerDep,
    services: ServicesDep,
    limit: int = 20,
    after: str | None = None,
    status: str | None = None,
) -> common.JsonResponse:
    deliveries, has_more = services.webhooks.deliveries(
        caller.id, endpoint_id, limit=limit, after=after, status=status
    )
    data = [wire.render_delivery(d) for d in deliveries]
    return common.JsonResponse(wire.render_list(data, has_more))
