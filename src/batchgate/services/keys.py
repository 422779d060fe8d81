"""API keys: created once (the secret is shown then and never again), stored
hashed, compared in constant time, scoped (admin or ordinary), expiring and
revocable."""

from __future__ import annotations

import builtins
import hmac
import time

from batchgate.domain import errors, ids
from batchgate.domain import keys as key_model
from batchgate.store import port


class KeyService:
    def __init__(self, store: port.KeyStore) -> None:
        self.store = store

    def create(
        self,
        name: str,
        *,
        admin: bool = False,
        expires_at: float | None = None,
        quotas: key_model.KeyQuotas | None = None,
    ) -> tuple[key_model.ApiKey, str]:
        """A new key; returns its record and the secret (shown once)."""
        key_model.check_name(name)
        if expires_at is not None and expires_at <= time.time():
            raise errors.InvalidRequest("expires_at must be in the future", param="expires_at")
        secret = ids.new_api_key()
        record = self.store.create_key(
            name,
            key_model.hash_key(secret),
            key_model.display_prefix(secret),
            time.time(),
            admin=admin,
            expires_at=expires_at,
            quotas=quotas,
        )
        return record, secret

    def register(self, name: str, secret: str) -> key_model.ApiKey:
        """Store a key the operator chose (``serve --api-key``), once. The
        operator's own key is an admin key."""
        digest = key_model.hash_key(secret)
        for existing, stored_hash in self.store.keys_with_prefix(key_model.display_prefix(secret)):
            if hmac.compare_digest(stored_hash, digest) and existing.revoked_at is None:
                return existing
        return self.store.create_key(
            name, digest, key_model.display_prefix(secret), time.time(), admin=True
        )

    def list(self) -> list[key_model.ApiKey]:
        return self.store.list_keys()

    def get(self, key_id: str) -> key_model.ApiKey:
        record = self.store.get_key(key_id)
        if record is None:
            raise errors.NotFound(f"no API key with id {key_id!r}", param="key_id")
        return record

    def revoke(self, key_id: str) -> key_model.ApiKey:
        """Revoke one key by id. The last active admin key stays: without it
        nobody could manage keys over the API again."""
        self.get(key_id)  # 404 for an unknown id
        # One store transaction checks and revokes, so two concurrent revokes
        # cannot each see the other admin key and remove both.
        if self.store.revoke_key(key_id, time.time()) is key_model.Revocation.LAST_ADMIN:
            raise errors.Conflict(
                f"{key_id!r} is the last active admin key; create another admin key first",
                param="key_id",
            )
        return self.get(key_id)

    def revoke_by_id_or_name(self, key_id_or_name: str) -> builtins.list[key_model.ApiKey]:
        """Revoke the active keys with this id or name (the CLI's argument)."""
        matches = [
            key
            for key in self.store.list_keys()
            if key_id_or_name in (key.id, key.name) and key.revoked_at is None
        ]
        return [self.revoke(key.id) for key in matches]

    def has_active_keys(self) -> bool:
        return self.store.count_active_keys() > 0

    def authenticate(self, secret: str | None) -> key_model.ApiKey:
        if not secret:
            raise errors.Unauthorized(
                "missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'"
            )
        if "\x00" in secret:
            # No key holds one, and PostgreSQL cannot compare text holding one.
            raise errors.Unauthorized("invalid API key")
        digest = key_model.hash_key(secret)
        # Look up by the non-secret display prefix, then compare hashes in
        # constant time, so response timing says nothing about the secret.
        for record, stored_hash in self.store.keys_with_prefix(key_model.display_prefix(secret)):
            if hmac.compare_digest(stored_hash, digest):
                if record.revoked_at is not None:
                    raise errors.Unauthorized("this API key has been revoked")
                if record.is_expired(time.time()):
                    raise errors.Unauthorized(
                        f"this API key expired at {_iso(record.expires_at)}",
                        code="expired_api_key",
                    )
                return record
        raise errors.Unauthorized("invalid API key")


def _iso(moment: float | None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment or 0))
