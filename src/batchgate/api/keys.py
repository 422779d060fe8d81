"""``/v1/keys``: API key management, for admin keys only. Deleting a key
revokes it (its row stays, so its objects keep an owner)."""

from __future__ import annotations

import fastapi

from batchgate.api import common
from batchgate.api.deps import AdminDep, ServicesDep
from batchgate.dialects import keys as key_wire

router = fastapi.APIRouter(prefix="/v1/keys", tags=["keys"])


@router.post("")
def create_key(raw: common.AdminBody, services: ServicesDep) -> common.JsonResponse:
    # The body is read raw (after the admin key is checked), not as a typed
    # parameter: FastAPI reads typed bodies before any dependency runs.
    body = key_wire.parse_create(raw)
    record, secret = services.keys.create(
        body.name, admin=body.admin, expires_at=body.expires_at, quotas=body.quotas.domain()
    )
    return common.JsonResponse(key_wire.render_key(record, secret))


@router.get("")
def list_keys(_admin: AdminDep, services: ServicesDep) -> common.JsonResponse:
    return common.JsonResponse(key_wire.render_list(services.keys.list()))


@router.get("/{key_id}")
def retrieve_key(key_id: str, _admin: AdminDep, services: ServicesDep) -> common.JsonResponse:
    return common.JsonResponse(key_wire.render_key(services.keys.get(key_id)))


@router.delete("/{key_id}")
def revoke_key(key_id: str, _admin: AdminDep, services: ServicesDep) -> common.JsonResponse:
    services.keys.revoke(key_id)
    return common.JsonResponse(key_wire.render_deleted(key_id))
