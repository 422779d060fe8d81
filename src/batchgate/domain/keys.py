"""API key hashing: keys are high-entropy random strings, so one SHA-256 is
enough (no password stretching needed); only the hash is stored."""

from __future__ import annotations

import hashlib


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def display_prefix(key: str) -> str:
    """The first characters, enough to tell keys apart in a listing."""
    return key[:10]
