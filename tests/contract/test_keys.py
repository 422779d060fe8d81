"""The key contract (port.KeyStore): keys found by prefix, revocable, never
the last active admin (even under concurrent revokes), scopes and quotas
round-trip."""

from __future__ import annotations

import secrets
import threading
import time

import pytest

from batchgate.domain import errors, keys
from batchgate.services.keys import KeyService
from batchgate.store import port


def test_keys_are_found_by_prefix_and_revocable(store: port.JobStore) -> None:
    key = store.create_key("ci", "h" * 64, "bg-abcdefg", time.time())
    assert store.keys_with_prefix("bg-abcdefg") == [(key, "h" * 64)]
    assert store.count_active_keys() == 1
    assert store.revoke_key(key.id, time.time()) is keys.Revocation.REVOKED
    assert store.revoke_key(key.id, time.time()) is keys.Revocation.NOT_ACTIVE  # once
    assert store.revoke_key("key_000000000000", time.time()) is keys.Revocation.NOT_ACTIVE
    assert store.count_active_keys() == 0


def _admin(store: port.JobStore, name: str, expires_at: float | None = None) -> keys.ApiKey:
    return store.create_key(
        name,
        secrets.token_hex(32),
        "bg-" + secrets.token_hex(4)[:7],
        time.time(),
        admin=True,
        expires_at=expires_at,
    )


def test_the_last_active_admin_key_is_never_revoked(store: port.JobStore) -> None:
    first, second = _admin(store, "a"), _admin(store, "b")
    expired = _admin(store, "old", expires_at=time.time() - 1)
    plain = store.create_key("t", "p" * 64, "bg-plain00", time.time())
    assert store.revoke_key(first.id, time.time()) is keys.Revocation.REVOKED
    # An expired admin key does not count as the other admin, and may go.
    assert store.revoke_key(second.id, time.time()) is keys.Revocation.LAST_ADMIN
    assert store.revoke_key(expired.id, time.time()) is keys.Revocation.REVOKED
    assert store.revoke_key(plain.id, time.time()) is keys.Revocation.REVOKED
    assert store.revoke_key(second.id, time.time()) is keys.Revocation.LAST_ADMIN
    assert store.get_key(second.id) == second  # still active


def _revoke_at(
    store: port.JobStore,
    key_id: str,
    barrier: threading.Barrier,
    outcomes: dict[str, keys.Revocation],
) -> None:
    barrier.wait()
    outcomes[key_id] = store.revoke_key(key_id, time.time())


def test_concurrent_revokes_leave_one_admin_key(store: port.JobStore) -> None:
    survivor = _admin(store, "first")
    for attempt in range(5):
        pair = [survivor, _admin(store, f"admin {attempt}")]
        barrier = threading.Barrier(2)
        outcomes: dict[str, keys.Revocation] = {}

        threads = [
            threading.Thread(target=_revoke_at, args=(store, key.id, barrier, outcomes))
            for key in pair
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(o.value for o in outcomes.values()) == ["last_admin", "revoked"]
        active = [k for k in store.list_keys() if k.admin and k.revoked_at is None]
        assert len(active) == 1
        survivor = active[0]


def test_key_scope_expiry_and_quotas_round_trip(store: port.JobStore) -> None:
    quotas = keys.KeyQuotas(
        max_enqueued_tokens={"m": 1000},
        max_active_batches=2,
        max_requests_per_batch=10,
        max_file_bytes=4096,
    )
    key = store.create_key(
        "ops", "a" * 64, "bg-admin00", 1.0, admin=True, expires_at=99.0, quotas=quotas
    )
    assert store.get_key(key.id) == key
    assert (key.admin, key.expires_at, key.quotas) == (True, 99.0, quotas)
    plain = store.create_key("t", "b" * 64, "bg-plain00", 2.0)
    assert store.get_key(plain.id) == plain and not plain.admin
    assert plain.quotas == keys.KeyQuotas()


def test_a_key_name_past_its_column_or_with_a_nul_is_refused_before_the_store(
    store: port.JobStore,
) -> None:
    """The CLI's ``keys create --name`` reaches the service unchecked: on
    PostgreSQL such a name was a DataError, on SQLite a stored key."""
    for name in ("n" * (keys.MAX_NAME_CHARS + 1), "a\x00b", ""):
        with pytest.raises(errors.InvalidRequest):
            KeyService(store).create(name)
    assert store.list_keys() == []
    record, _secret = KeyService(store).create("n" * keys.MAX_NAME_CHARS)
    assert record.name == "n" * keys.MAX_NAME_CHARS
