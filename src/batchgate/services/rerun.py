"""Re-running an ended batch's failed rows (the ``/retry`` routes): a new
batch of them, created as any batch is (services/batch_create.py), its
metadata naming the parent. Which rows qualify is domain/rerun.py; how a
dialect names its error types, dialects/rerun.py."""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Collection, Iterator
from typing import Protocol

from batchgate import canonical
from batchgate.domain import batch as batch_model
from batchgate.domain import errors, quotas, rerun
from batchgate.services.batch_create import BatchCreation, logged
from batchgate.services.batches import check_results_kept
from batchgate.store import port


class RerunStore(port.BatchStore, port.BatchSweeps, Protocol):
    """The roles a rerun uses: the parent's rows, storing the new batch and
    finalizing it if every row was born finished."""


class RerunService:
    def __init__(self, store: RerunStore, creation: BatchCreation) -> None:
        self.store = store
        self.creation = creation

    def rerun_failed(
        self, parent: batch_model.Batch, error_types: Collection[str] | None = None
    ) -> batch_model.Batch:
        """A new batch of the ``parent``'s rows that errored or expired (only
        those of ``error_types``, if given): same custom_ids, params, dialect
        and endpoint, its metadata naming the parent. It has no input file
        (``input_file_id`` null): the parent's holds every row, not the ones
        retried, and the parent link is in the metadata.

        Two passes over the parent's rows, like a file batch: count, then
        stream them into the new batch (an ended batch's rows never change,
        so both passes see the same rows)."""
        now = time.time()
        _check_rerunnable(parent)
        total, demand = self._count(parent, error_types)
        creation = self.creation
        creation.check_size(total)
        batch = creation.record(
            parent.owner,
            parent.dialect,
            parent.endpoint,
            total,
            rerun.child_metadata(parent.id, parent.metadata),
            None,
            now,
        )
        batch = dataclasses.replace(batch, results_ttl=parent.results_ttl)
        rows = (
            creation.admit(
                row.custom_id,
                row.model,
                row.params,
                functools.partial(canonical.load, row.params),
            )
            for row in self._failed_rows(parent, error_types)
        )
        admission = creation.admission(quotas.Demand(tokens=demand, requests=total, batches=1))
        self.store.create_batch(batch, creation.counted(rows, total), admission)
        self.store.finalize_batches(now, [batch.id])
        return logged(creation.stored(parent.owner, batch.id), "created")

    def _count(
        self, parent: batch_model.Batch, error_types: Collection[str] | None
    ) -> tuple[int, dict[str, int]]:
        """The rows to re-run, and the input tokens they will hold per model;
        a Conflict when there are none."""
        total = 0
        demand: dict[str, int] = {}
        for row in self._failed_rows(parent, error_types):
            total += 1
            if row.model in self.creation.settings.models:
                self.creation.add_tokens(demand, canonical.load(row.params))
        if total == 0:
            wanted = "errored or expired" if error_types is None else ", ".join(error_types)
            raise errors.Conflict(
                f"batch {parent.id!r} has no requests that ended {wanted}; nothing to retry",
                param="batch_id",
                code="nothing_to_retry",
            )
        return total, demand

    def _failed_rows(
        self, parent: batch_model.Batch, error_types: Collection[str] | None
    ) -> Iterator[rerun.StoredRequest]:
        for row in self.store.iter_requests(parent.id, rerun.RETRIED_STATES):
            if rerun.selected(row, error_types):
                yield row


def _check_rerunnable(parent: batch_model.Batch) -> None:
    """Only an ended batch whose results are still kept can be re-run."""
    if not parent.status.is_ended:
        raise errors.Conflict(
            f"batch {parent.id!r} has not ended yet; only an ended batch's failed "
            "requests can be retried",
            param="batch_id",
        )
    check_results_kept(parent)
