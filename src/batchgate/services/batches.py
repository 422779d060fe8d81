"""Reading, cancelling and deleting batches; shared by every dialect.
Creating one is services/batch_create.py; re-running its failed rows,
services/rerun.py."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Protocol

from batchgate.domain import batch as batch_model
from batchgate.domain import endpoints, errors, retention
from batchgate.domain import upstream_jobs as uj
from batchgate.domain.states import RESULT_STATES, Dialect, RequestState
from batchgate.services.batch_create import logged
from batchgate.store import port


class BatchServiceStore(port.BatchStore, port.UpstreamJobStore, Protocol):
    """The roles BatchService uses: batches and their rows, and the upstream
    jobs that serve a provider-batch model's rows (read only)."""


class BatchService:
    def __init__(self, store: BatchServiceStore) -> None:
        self.store = store

    # -- read -----------------------------------------------------------------
    def get(self, owner: str | None, batch_id: str) -> batch_model.Batch:
        """``owner``'s batch (None: any key's, for admin views only)."""
        batch = self.store.get_batch(batch_id, owner)
        if batch is None:
            raise errors.NotFound(f"no batch with id {batch_id!r}", param="batch_id")
        return batch

    def list(
        self,
        owner: str | None,
        *,
        limit: int,
        after: str | None = None,
        before: str | None = None,
        dialects: Sequence[Dialect] | None = None,
    ) -> tuple[list[batch_model.Batch], bool]:
        if not 1 <= limit <= 1000:
            raise errors.InvalidRequest("limit must be between 1 and 1000", param="limit")
        return self.store.list_batches(
            owner, limit=limit, after=after, before=before, dialects=dialects
        )

    def results(
        self, batch: batch_model.Batch, states: Sequence[RequestState] | None = None
    ) -> Iterator[batch_model.ResultRow]:
        """The batch's rows in input order; ``states`` keeps only those. Each
        page is read in its own short transaction, so while the batch runs a
        long download also picks up rows that finish during it. A 404 saying
        so once the results have expired."""
        check_results_kept(batch)
        if states is not None and batch.status.is_ended and set(states) >= set(RESULT_STATES):
            states = None  # every row of an ended batch is terminal: no filter to apply
        with_params = endpoints.renders_from_request(batch.endpoint)
        return self.store.iter_results(batch.id, states, with_params=with_params)

    def upstream_jobs(self, batch: batch_model.Batch) -> Sequence[uj.UpstreamJob]:
        """The provider-batch jobs that hold or served the batch's rows
        (none for a batch of other models)."""
        return self.store.jobs_for_batch(batch.id)

    def served_paths(self, batch: batch_model.Batch) -> dict[uj.Path, int]:
        """How many of the batch's rows each path served (a provider-batch
        model's; empty for a batch of other models)."""
        return self.store.served_paths(batch.id)

    # -- change ---------------------------------------------------------------
    def cancel(self, owner: str, batch_id: str) -> batch_model.Batch:
        batch = self.store.cancel_batch(batch_id, owner, time.time())
        if batch is None:
            raise errors.NotFound(f"no batch with id {batch_id!r}", param="batch_id")
        return logged(batch, "cancelled")

    def delete(self, batch: batch_model.Batch) -> None:
        """Delete an ended batch with its results (Anthropic lets only ended
        batches go). An ended batch never changes again, so checking and then
        deleting cannot race a worker writing into it."""
        if not batch.status.is_ended:
            raise errors.Conflict(
                f"batch {batch.id!r} has not ended yet; cancel it and wait until it has "
                "ended before deleting it",
                param="batch_id",
            )
        if not self.store.delete_batch(batch.id, batch.owner, time.time()):
            raise errors.NotFound(f"no batch with id {batch.id!r}", param="batch_id")


def check_results_kept(batch: batch_model.Batch) -> None:
    """Raise the dialect-neutral 404 for results past their retention."""
    if batch.results_expire_at is not None and batch.results_expired(time.time()):
        raise retention.results_expired(batch.id, batch.results_expire_at)
