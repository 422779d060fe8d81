"""API keys in memory (port.KeyStore)."""

from __future__ import annotations

import dataclasses

from batchgate.domain import errors as domain_errors
from batchgate.domain import keys
from batchgate.testing.memory.tables import KeyRow, MemoryTables, key_order


class MemoryKeys(MemoryTables):
    """port.KeyStore in dictionaries."""

    def create_key(
        self,
        name: str,
        key_hash: str,
        prefix: str,
        now: float,
        *,
        admin: bool = False,
        expires_at: float | None = None,
        quotas: keys.KeyQuotas | None = None,
    ) -> keys.ApiKey:
        key = keys.new_key(name, prefix, now, admin=admin, expires_at=expires_at, quotas=quotas)
        with self._lock:
            if any(row.key_hash == key_hash for row in self._keys.values()):
                raise domain_errors.Conflict("an API key with this secret already exists")
            self._keys[key.id] = KeyRow(key, key_hash)
        return key

    def get_key(self, key_id: str) -> keys.ApiKey | None:
        with self._lock:
            row = self._keys.get(key_id)
            return None if row is None else row.key

    def list_keys(self) -> list[keys.ApiKey]:
        with self._lock:
            return sorted((row.key for row in self._keys.values()), key=key_order)

    def revoke_key(self, key_id: str, now: float) -> keys.Revocation:
        def active_admin(key: keys.ApiKey) -> bool:
            return key.admin and key.revoked_at is None and not key.is_expired(now)

        with self._lock:
            row = self._keys.get(key_id)
            if row is None or row.key.revoked_at is not None:
                return keys.Revocation.NOT_ACTIVE
            if active_admin(row.key) and sum(active_admin(r.key) for r in self._keys.values()) <= 1:
                return keys.Revocation.LAST_ADMIN
            row.key = dataclasses.replace(row.key, revoked_at=now)
            return keys.Revocation.REVOKED

    def keys_with_prefix(self, prefix: str) -> list[tuple[keys.ApiKey, str]]:
        with self._lock:
            return [
                (row.key, row.key_hash) for row in self._keys.values() if row.key.prefix == prefix
            ]

    def count_active_keys(self) -> int:
        with self._lock:
            return sum(1 for row in self._keys.values() if row.key.revoked_at is None)

    def end_session(self, session_id: str, expires_at: float, now: float) -> None:
        with self._lock:
            for ended in [s for s, until in self._ended_sessions.items() if until <= now]:
                del self._ended_sessions[ended]
            self._ended_sessions[session_id] = expires_at

    def session_ended(self, session_id: str) -> bool:
        with self._lock:
            return session_id in self._ended_sessions
