"""The JobStore on SQLAlchemy Core: one implementation for SQLite and PostgreSQL.

The two differ only where the databases do: PostgreSQL claims with
``FOR UPDATE SKIP LOCKED`` so many workers claim in parallel; SQLite serializes
writers with ``BEGIN IMMEDIATE`` (see engine.py), which makes the same
statements safe there. The methods live in parts by concern:
sql_keys_files.py, sql_batches.py, sql_queue.py, sql_stats.py, sql_retention.py
and sql_upstream_jobs.py.
"""

from __future__ import annotations

from batchgate.store import engine as engine_module
from batchgate.store.sql_batches import Batches
from batchgate.store.sql_keys_files import KeysAndFiles
from batchgate.store.sql_queue import Queue
from batchgate.store.sql_retention import Retention
from batchgate.store.sql_stats import Stats
from batchgate.store.sql_throughput import Throughput
from batchgate.store.sql_upstream_jobs import UpstreamJobs
from batchgate.store.sql_webhooks import Webhooks


class SqlJobStore(
    KeysAndFiles, Batches, Queue, Stats, Webhooks, Retention, Throughput, UpstreamJobs
):
    @classmethod
    def open(cls, url: str, *, migrate: bool = True) -> SqlJobStore:
        engine = engine_module.create_engine(url)
        if migrate:
            engine_module.migrate(engine)
        return cls(engine)
