"""``/v1/keys``: API key management, for admin keys only. Deleting a key
revokes it (its row stays, so its objects keep an owner)."""

from __future__ import annotations

from typing import Annotated

import fastapi
import pydantic

from batchgate.api import common
from batchgate.api.deps import AdminDep, ServicesDep
from batchgate.dialects import keys as key_wire
from batchgate.domain import keys as key_model

router = fastapi.APIRouter(prefix="/v1/keys", tags=["keys"])


# The same bounds as the CLI and the config (see domain/keys.py).
_Positive = Annotated[int, pydantic.Field(ge=1, le=key_model.MAX_QUOTA_COUNT)]
_Bytes = Annotated[int, pydantic.Field(ge=1, le=key_model.MAX_QUOTA_BYTES)]
_Tokens = Annotated[int, pydantic.Field(ge=1, le=key_model.MAX_QUOTA_TOKENS)]


class Quotas(pydantic.BaseModel):
    """The key's own quotas; unset fields fall back to the config's ``[quotas]``."""

    model_config = pydantic.ConfigDict(extra="forbid")
    max_enqueued_tokens: dict[str, _Tokens] = pydantic.Field(
        default_factory=dict, description="model -> input tokens queued or running at once"
    )
    max_active_batches: _Positive | None = None
    max_requests_per_batch: _Positive | None = None
    max_file_bytes: _Bytes | None = pydantic.Field(
        default=None, description="bytes of files stored, in total"
    )

    def domain(self) -> key_model.KeyQuotas:
        return key_model.KeyQuotas(**self.model_dump())


class KeyCreate(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    # No control characters: PostgreSQL refuses NUL in text.
    name: str = pydantic.Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")
    admin: bool = False
    expires_at: int | None = pydantic.Field(
        default=None, ge=0, le=2**40, description="unix seconds; the key stops working then"
    )
    quotas: Quotas = pydantic.Field(default_factory=Quotas)


@router.post("")
def create_key(body: KeyCreate, _admin: AdminDep, services: ServicesDep) -> common.JsonResponse:
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
