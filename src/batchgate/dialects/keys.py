"""Wire shapes of ``/v1/keys`` (admin key management), after OpenAI's admin
API keys: the secret ``value`` appears once, in the create response."""

from __future__ import annotations

from typing import Any

from batchgate.dialects import openai_objects
from batchgate.domain import keys as key_model


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
