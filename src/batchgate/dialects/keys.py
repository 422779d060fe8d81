"""Wire shapes of ``/v1/keys`` (admin key management), after OpenAI's admin
API keys: the secret ``value`` appears once, in the create response."""

from __future__ import annotations

from typing import Annotated, Any

import pydantic

from batchgate.dialects import openai_objects, paths
from batchgate.domain import keys as key_model

# The same bounds as the CLI and the config (see domain/keys.py).
_Positive = Annotated[int, pydantic.Field(ge=1, le=key_model.MAX_QUOTA_COUNT)]
_Bytes = Annotated[int, pydantic.Field(ge=1, le=key_model.MAX_QUOTA_BYTES)]
_Tokens = Annotated[int, pydantic.Field(ge=1, le=key_model.MAX_QUOTA_TOKENS)]


class Quotas(pydantic.BaseModel):
    """The key's own quotas; unset fields fall back to the config's ``[quotas]``."""

    # Strict: JSON types as sent, so ``"10"`` is not a number nor ``"yes"`` true.
    model_config = pydantic.ConfigDict(extra="forbid", strict=True)
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
    """``POST /v1/keys``. Strict, so ``"admin": "yes"`` (or ``1``) is a 400,
    not an admin key: who holds admin rights is not left to coercion."""

    model_config = pydantic.ConfigDict(extra="forbid", strict=True)
    # No control characters: PostgreSQL refuses NUL in text.
    name: str = pydantic.Field(
        min_length=1, max_length=key_model.MAX_NAME_CHARS, pattern=r"^[^\x00-\x1f\x7f]+$"
    )
    admin: bool = False
    expires_at: int | None = pydantic.Field(
        default=None, ge=0, le=2**40, description="unix seconds; the key stops working then"
    )
    quotas: Quotas = pydantic.Field(default_factory=Quotas)


def parse_create(body: bytes) -> KeyCreate:
    return paths.parse_body(KeyCreate, body)


def _unix(moment: float | None) -> int | None:
    return None if moment is None else int(moment)


def render_quotas(quotas: key_model.KeyQuotas) -> dict[str, Any]:
    return {
        "max_enqueued_tokens": dict(quotas.max_enqueued_tokens),
        "max_active_batches": quotas.max_active_batches,
        "max_requests_per_batch": quotas.max_requests_per_batch,
        "max_file_bytes": quotas.max_file_bytes,
    }


def render_key(key: key_model.ApiKey, secret: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "object": "api_key",
        "id": key.id,
        "name": key.name,
        "redacted_value": f"{key.prefix}…",
        "admin": key.admin,
        "created_at": int(key.created_at),
        "expires_at": _unix(key.expires_at),
        "revoked_at": _unix(key.revoked_at),
        "quotas": render_quotas(key.quotas),
    }
    if secret is not None:
        body["value"] = secret
    return body


def render_list(keys: list[key_model.ApiKey]) -> dict[str, Any]:
    data = [render_key(key) for key in keys]
    return openai_objects.list_page(data, False)


def render_deleted(key_id: str) -> dict[str, Any]:
    return {"object": "api_key.deleted", "id": key_id, "deleted": True}
