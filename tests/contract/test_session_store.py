"""The store's ended dashboard sessions (logging out), on every store."""

from __future__ import annotations

from batchgate.store import port


def test_an_ended_session_stays_ended_until_its_expiry_then_is_forgotten(
    store: port.JobStore,
) -> None:
    assert not store.session_ended("s1")
    store.end_session("s1", expires_at=100.0, now=10.0)
    store.end_session("s1", expires_at=100.0, now=11.0)  # twice: two tabs, no error
    assert store.session_ended("s1")
    assert not store.session_ended("s2")
    # Ending another session after s1's expiry forgets s1 (its token no
    # longer verifies anyway), so the record stays small.
    store.end_session("s2", expires_at=300.0, now=200.0)
    assert not store.session_ended("s1")
    assert store.session_ended("s2")
