"""API keys: hashing, scopes and quotas.

Keys are high-entropy random strings, so one SHA-256 is enough (no password
stretching needed); only the hash is stored."""

from __future__ import annotations

import dataclasses
import enum
import hashlib
from collections.abc import Mapping

from batchgate.domain import errors, ids


@dataclasses.dataclass(frozen=True)
class ApiKey:
    """A key as stored: never the secret, only its display prefix."""

    id: str
    name: str
    prefix: str
    created_at: float
    revoked_at: float | None
    # Admin keys manage keys and see every tenant; ordinary keys own objects.
    admin: bool = False
    expires_at: float | None = None
    quotas: KeyQuotas = dataclasses.field(default_factory=lambda: KeyQuotas())

    def is_expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now


class Revocation(enum.Enum):
    """What revoking one key did (the store decides in one transaction)."""

    REVOKED = "revoked"
    NOT_ACTIVE = "not_active"  # no such key, or it was revoked already
    # Refused: the last active admin key stays, or nobody could manage keys
    # over the API again.
    LAST_ADMIN = "last_admin"


def new_key(
    name: str,
    prefix: str,
    now: float,
    *,
    admin: bool = False,
    expires_at: float | None = None,
    quotas: KeyQuotas | None = None,
) -> ApiKey:
    """The record of a key being created (its secret is hashed elsewhere)."""
    return ApiKey(
        id=ids.new_key_id(),
        name=name,
        prefix=prefix,
        created_at=now,
        revoked_at=None,
        admin=admin,
        expires_at=expires_at,
        quotas=quotas or KeyQuotas(),
    )


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


# The store's column widths for a key's name and its display prefix.
MAX_NAME_CHARS = 200
PREFIX_CHARS = 10


def check_name(name: str) -> None:
    """A name fits its column and holds no control character (the CLI's
    names come here unchecked; the API's body checks the same)."""
    if not 1 <= len(name) <= MAX_NAME_CHARS or any(
        ord(char) < 0x20 or ord(char) == 0x7F for char in name
    ):
        raise errors.InvalidRequest(
            f"a key name is 1 to {MAX_NAME_CHARS} characters without control characters",
            param="name",
        )


def display_prefix(key: str) -> str:
    """The first characters, enough to tell keys apart in a listing."""
    return key[:PREFIX_CHARS]


# The largest value each quota may take, wherever it is set (the API, the
# CLI, the config): the store keeps counts in INTEGER columns and bytes in
# BIGINT ones (a larger value was a 500), and tokens in JSON, where 2^53 is
# the last integer every client's JSON parser reads exactly.
MAX_QUOTA_COUNT = 2**31 - 1  # max_active_batches, max_requests_per_batch
MAX_QUOTA_BYTES = 2**63 - 1  # max_file_bytes
MAX_QUOTA_TOKENS = 2**53  # each model's max_enqueued_tokens


@dataclasses.dataclass(frozen=True)
class KeyQuotas:
    """Limits on what one key may hold at once. ``None`` (or a model missing
    from ``max_enqueued_tokens``) means "the configured default"."""

    # Model name -> input tokens the key may have queued or running on it.
    max_enqueued_tokens: Mapping[str, int] = dataclasses.field(default_factory=dict)
    max_active_batches: int | None = None
    max_requests_per_batch: int | None = None
    max_file_bytes: int | None = None

    def over(self, defaults: KeyQuotas) -> KeyQuotas:
        """These quotas, with ``defaults`` filling what is unset."""
        return KeyQuotas(
            max_enqueued_tokens={**defaults.max_enqueued_tokens, **self.max_enqueued_tokens},
            max_active_batches=_first(self.max_active_batches, defaults.max_active_batches),
            max_requests_per_batch=_first(
                self.max_requests_per_batch, defaults.max_requests_per_batch
            ),
            max_file_bytes=_first(self.max_file_bytes, defaults.max_file_bytes),
        )


def _first(value: int | None, default: int | None) -> int | None:
    return default if value is None else value
