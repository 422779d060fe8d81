"""An in-memory JobStore: every role of the port in plain Python, for fast tests.

It passes the same contract suite as the SQL store (tests/contract/, one file
per role), so a test that runs the worker or a service on it exercises the
real rules: fair claims, leases, fenced writes, the batch and request state
machines of domain/states.py (the same tables the SQL guards are built from).
What it does not have is durability and multi-process sharing: it lives in
one process and forgets everything when dropped.

One module per role under testing/memory/, like the port (store/port.py);
MemoryJobStore composes them over one set of dictionaries and one lock.

Why dictionaries, not SQLite ``:memory:`` built from the same tables (issue
18 asked to decide by measuring; measured 2026-12-05 on the 2-core dev box,
shared with other runs, so the ratios matter more than the figures): the
SQL store on an in-memory SQLite database (one connection behind a
one-slot pool, tables from tables.metadata) passes the contract suite, but

* a claim of 20 plus a record_outcomes of 20, on a 2000-request batch:
  0.35 ms with dictionaries, 1.83 ms on SQLite ``:memory:`` (5x);
* the contract suite's 74 memory cases: 1.1 s against 2.5 s (pytest's own
  time), 3.3 s against 4.8 s wall;
* tests/unit/test_worker.py: 0.45 s against 1.9-2.1 s, 2.4 s against
  4.4-5.0 s wall (importing SQLAlchemy and Alembic alone costs about 1.2 s,
  which the unit tests otherwise never pay).

That is a loss of speed, which the issue ruled out, so the dictionaries stay
and the rules they restate are kept honest by the contract suite (including
tests/contract/test_request_transitions.py and test_transitions.py, which
require both stores to make exactly the moves of domain/states.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from batchgate.store import port
from batchgate.testing.memory.batches import MemoryBatches
from batchgate.testing.memory.figures import MemoryStats, MemoryWorkers
from batchgate.testing.memory.files import MemoryFiles
from batchgate.testing.memory.keys import MemoryKeys
from batchgate.testing.memory.queue import MemoryQueue, MemorySweeps
from batchgate.testing.memory.retention import MemoryRetention
from batchgate.testing.memory.tables import MEMORY_REVISION, MemoryTables
from batchgate.testing.memory.upstream_jobs import MemoryUpstreamJobs
from batchgate.testing.memory.webhooks import MemoryWebhookEndpoints, MemoryWebhookOutbox

__all__ = ["MEMORY_REVISION", "MemoryJobStore"]


class MemoryJobStore(
    MemoryKeys,
    MemoryFiles,
    MemoryBatches,
    MemoryQueue,
    MemorySweeps,
    MemoryWebhookEndpoints,
    MemoryWebhookOutbox,
    MemoryStats,
    MemoryWorkers,
    MemoryRetention,
    MemoryUpstreamJobs,
    MemoryTables,
):
    """A :class:`batchgate.store.port.JobStore` kept in dictionaries."""

    def close(self) -> None:
        """Nothing to release; kept for the port."""


if TYPE_CHECKING:
    # mypy holds the class to the port: a method the port gains and this
    # store lacks fails the lint, not a test run.
    _CONFORMS: port.JobStore = MemoryJobStore()
    # ... and each role class to its role.
    _ROLES: tuple[
        port.KeyStore,
        port.FileStore,
        port.BatchStore,
        port.QueueStore,
        port.BatchSweeps,
        port.WebhookEndpoints,
        port.WebhookOutbox,
        port.StatsReader,
        port.WorkerRegistry,
        port.RetentionStore,
        port.UpstreamJobStore,
    ] = (
        MemoryKeys(),
        MemoryFiles(),
        MemoryBatches(),
        MemoryQueue(),
        MemorySweeps(),
        MemoryWebhookEndpoints(),
        MemoryWebhookOutbox(),
        MemoryStats(),
        MemoryWorkers(),
        MemoryRetention(),
        MemoryUpstreamJobs(),
    )
