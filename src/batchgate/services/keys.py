"""API keys: created once (the secret is shown then and never again), stored
hashed, compared in constant time, revocable."""

from __future__ import annotations

import hmac
import time

from batchgate.domain import errors, ids
from batchgate.domain import keys as key_hashing
from batchgate.store import port


class KeyService:
    def __init__(self, store: port.JobStore) -> None:
        self.store = store

    def create(self, name: str) -> tuple[port.ApiKey, str]:
        """A new key; returns its record and the secret (shown once)."""
        secret = ids.new_api_key()
        record = self.store.create_key(
            name, key_hashing.hash_key(secret), key_hashing.display_prefix(secret), time.time()
        )
        return record, secret

    def register(self, name: str, secret: str) -> port.ApiKey:
        """Store a key the operator chose (``serve --api-key``), once."""
        digest = key_hashing.hash_key(secret)
        for existing, stored_hash in self.store.keys_with_prefix(
            key_hashing.display_prefix(secret)
        ):
            if hmac.compare_digest(stored_hash, digest) and existing.revoked_at is None:
                return existing
        return self.store.create_key(name, digest, key_hashing.display_prefix(secret), time.time())

    def list(self) -> list[port.ApiKey]:
        return self.store.list_keys()

    def revoke(self, key_id_or_name: str) -> int:
        return self.store.revoke_key(key_id_or_name, time.time())

    def has_active_keys(self) -> bool:
        return self.store.count_active_keys() > 0

    def authenticate(self, secret: str | None) -> port.ApiKey:
        if not secret:
            raise errors.Unauthorized(
                "missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'"
            )
        digest = key_hashing.hash_key(secret)
        # Look up by the non-secret display prefix, then compare hashes in
        # constant time, so response timing says nothing about the secret.
        for record, stored_hash in self.store.keys_with_prefix(key_hashing.display_prefix(secret)):
            if hmac.compare_digest(stored_hash, digest):
                if record.revoked_at is not None:
                    raise errors.Unauthorized("this API key has been revoked")
                return record
        raise errors.Unauthorized("invalid API key")
