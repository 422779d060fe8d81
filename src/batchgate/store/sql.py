"""The JobStore on SQLAlchemy Core: one implementation for SQLite and PostgreSQL.

The two differ only where the databases do: PostgreSQL claims with
``FOR UPDATE SKIP LOCKED`` so many workers claim in parallel; SQLite serializes
writers with ``BEGIN IMMEDIATE`` (see engine.py), which makes the same
statements safe there. The methods live in three parts by concern:
sql_keys_files.py, sql_batches.py and sql_queue.py.
"""

from __future__ import annotations

from batchgate.store import engine as engine_module
from batchgate.store.sql_batches import Batches
from batchgate.store.sql_keys_files import KeysAndFiles
from batchgate.store.sql_queue import Queue


class SqlJobStore(KeysAndFiles, Batches, Queue):
    @classmethod
    def open(cls, url: str, *, migrate: bool = True) -> SqlJobStore:
        engine = engine_module.create_engine(url)
        if migrate:
            engine_module.migrate(engine)
        return cls(engine)
