"""Test doubles shipped with batchgate, for its own tests and for anyone
building on it (modelled on procrastinate's ``testing.py`` and httpx's
``MockTransport``):

* :class:`MemoryJobStore`: the JobStore port in memory; it passes the same
  contract suite as the SQL store.
* :class:`FakeBackend`: a Backend whose every call goes to a handler you
  script (:func:`reply`, :func:`sequence`, :func:`unavailable`,
  :func:`overloaded`, :func:`rejected`); with an ``embed`` handler
  (:func:`embed_echo`, :func:`embedding`) it serves embeddings too.
"""

from __future__ import annotations

from batchgate.testing.fake_backend import (
    ALL_CAPABILITIES,
    EmbedHandler,
    FakeBackend,
    Handler,
    echo,
    embed_echo,
    embedding,
    overloaded,
    rejected,
    reply,
    sequence,
    unavailable,
    vector_for,
)
from batchgate.testing.memory_store import MemoryJobStore

__all__ = [
    "ALL_CAPABILITIES",
    "EmbedHandler",
    "FakeBackend",
    "Handler",
    "MemoryJobStore",
    "echo",
    "embed_echo",
    "embedding",
    "overloaded",
    "rejected",
    "reply",
    "sequence",
    "unavailable",
    "vector_for",
]
