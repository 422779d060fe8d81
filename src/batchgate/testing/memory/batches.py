"""Batches in memory (port.BatchStore)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence

from batchgate.domain import batch as batch_model
from batchgate.domain import errors as domain_errors
from batchgate.domain import failures, pages, quotas, rerun, retention
from batchgate.domain import files as file_model
from batchgate.domain.counts import StateTally
from batchgate.domain.states import BatchStatus, Dialect, RequestState
from batchgate.testing.memory.tables import BatchRow, MemoryTables, RequestRow, batch_order


class MemoryBatches(MemoryTables):
    """port.BatchStore in dictionaries."""

    def create_batch(
        self,
        batch: batch_model.Batch,
        requests: Iterable[batch_model.NewRequest],
        admission: quotas.Admission | None = None,
        input_file: tuple[file_model.FileRecord, Iterable[bytes]] | None = None,
    ) -> None:
        # Read every request before storing anything: a failing source, a
        # duplicate custom_id or a quota leaves nothing half-stored.
        new = list(requests)
        custom_ids = {request.custom_id for request in new}
        with self._lock:
            if batch.id in self._batches or len(custom_ids) != len(new):
                raise batch_model.ids_taken(batch.id)
            if admission is not None:
                self._admit(batch.owner, admission)
            if input_file is not None:
                self._insert_file(*input_file, admission)
            models = {request.model for request in new}
            model = models.pop() if len(models) == 1 else None
            stored_batch = dataclasses.replace(batch, tally=StateTally(by_state={}), model=model)
            row = BatchRow(stored_batch, [])
            for index, request in enumerate(new):
                stored = RequestRow(
                    id=self._next_request_id,
                    batch_id=batch.id,
                    idx=index,
                    custom_id=request.custom_id,
                    model=request.model,
                    params=request.params,
                    state=request.state,
                    error=request.error,
                    finished_at=batch.created_at if request.state.is_terminal else None,
                    enqueued_tokens=request.enqueued_tokens,
                )
                self._next_request_id += 1
                self._requests[stored.id] = stored
                row.request_ids.append(stored.id)
            self._batches[batch.id] = row

    def enqueued_tokens(self, owner: str, models: Sequence[str]) -> dict[str, int]:
        with self._lock:
            return self._enqueued(owner, models)

    def check_admission(self, owner: str, admission: quotas.Admission) -> None:
        with self._lock:
            self._admit(owner, admission)

    def fail_batch(
        self, batch: batch_model.Batch, errors: list[failures.InputError], now: float
    ) -> None:
        failed = dataclasses.replace(
            batch,
            status=BatchStatus.FAILED,
            errors=list(errors),
            failed_at=now,
            in_progress_at=None,
            tally=StateTally(by_state={}),
            results_expire_at=retention.expiry(now, batch.results_ttl),
        )
        with self._lock:
            if batch.id in self._batches:
                raise domain_errors.Conflict(f"batch {batch.id!r} already exists")
            self._batches[batch.id] = BatchRow(failed, [])
            self._add_batch_event(batch.id, batch.owner, BatchStatus.FAILED, now)

    def get_batch(self, batch_id: str, owner: str | None = None) -> batch_model.Batch | None:
        with self._lock:
            row = self._live_batch(batch_id, owner)
            return None if row is None else self._with_tally(row)

    def list_batches(
        self,
        owner: str | None,
        *,
        limit: int,
        after: str | None = None,
        before: str | None = None,
        dialects: Sequence[Dialect] | None = None,
    ) -> tuple[list[batch_model.Batch], bool]:
        with self._lock:
            rows = [
                row
                for row in self._batches.values()
                if owner in (None, row.batch.owner)
                and row.deleted_at is None
                and (not dialects or row.batch.dialect in dialects)
            ]
            for pivot_id, older in ((after, True), (before, False)):
                pivot = self._batches.get(pivot_id) if pivot_id else None
                if pivot is None or owner not in (None, pivot.batch.owner):
                    continue
                mark = batch_order(pivot.batch)
                rows = [
                    row
                    for row in rows
                    if (batch_order(row.batch) < mark if older else batch_order(row.batch) > mark)
                ]
            upwards = pages.walks_upwards(after, before)
            rows.sort(key=lambda row: batch_order(row.batch), reverse=not upwards)
            page, more = pages.page(rows, limit, upwards=upwards)
            return [self._with_tally(row) for row in page], more

    def cancel_batch(self, batch_id: str, owner: str, now: float) -> batch_model.Batch | None:
        with self._lock:
            row = self._live_batch(batch_id, owner)
            if row is None:
                return None
            if self._move(row, BatchStatus.CANCELLING, now):
                self._end_open_requests(row, RequestState.CANCELED, now)
            return self._with_tally(row)

    def delete_batch(self, batch_id: str, owner: str, now: float) -> bool:
        with self._lock:
            row = self._live_batch(batch_id, owner)
            if row is None:
                return False
            row.deleted_at = now
            for request_id in row.request_ids:
                del self._requests[request_id]
            row.request_ids = []
            return True

    def tally(self, batch_id: str) -> StateTally:
        with self._lock:
            row = self._batches.get(batch_id)
            return StateTally(by_state={}) if row is None else self._tally(row)

    def iter_results(
        self,
        batch_id: str,
        states: Sequence[RequestState] | None = None,
        *,
        with_params: bool = False,
    ) -> Iterator[batch_model.ResultRow]:
        for request in self._rows_of(batch_id, states):
            yield batch_model.ResultRow(
                request.idx,
                request.custom_id,
                request.state,
                request.result,
                request.error,
                request.finished_at,
                request.params if with_params else None,
                request.route,
            )

    def iter_requests(
        self, batch_id: str, states: Sequence[RequestState]
    ) -> Iterator[rerun.StoredRequest]:
        for request in self._rows_of(batch_id, states):
            yield rerun.StoredRequest(
                request.custom_id, request.model, request.params, request.state, request.error
            )

    def _live_batch(self, batch_id: str, owner: str | None) -> BatchRow | None:
        row = self._batches.get(batch_id)
        if row is None or row.deleted_at is not None:
            return None
        if owner is not None and row.batch.owner != owner:
            return None
        return row

    def _rows_of(self, batch_id: str, states: Sequence[RequestState] | None) -> list[RequestRow]:
        with self._lock:
            row = self._batches.get(batch_id)
            if row is None:
                return []
            return [
                dataclasses.replace(self._requests[i])
                for i in row.request_ids
                if not states or self._requests[i].state in states
            ]
