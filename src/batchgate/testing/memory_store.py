"""An in-memory JobStore: the whole port in plain Python, for fast tests.

It passes the same contract suite as the SQL store (tests/contract/), so a
test that runs the worker or a service on it exercises the real rules: fair
claims, leases, fenced writes, the batch state machine of domain/states.py.
What it does not have is durability and multi-process sharing: it lives in
one process and forgets everything when dropped.

Every method holds one lock, so it is safe from the threads async callers
use (``asyncio.to_thread``), and each call is atomic like a transaction.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from batchgate.domain import batch as batch_model
from batchgate.domain import errors as domain_errors
from batchgate.domain import (
    estimate,
    failures,
    fairness,
    keys,
    pages,
    quotas,
    rerun,
    result_files,
    retention,
    retry,
    stats,
    workers,
)
from batchgate.domain import files as file_model
from batchgate.domain import states as state_rules
from batchgate.domain.counts import StateTally
from batchgate.domain.states import BatchStatus, Dialect, RequestState
from batchgate.store import port
from batchgate.testing.memory_webhooks import MemoryWebhooks


@dataclasses.dataclass
class _Request:
    id: int
    batch_id: str
    idx: int
    custom_id: str
    model: str
    params: str
    state: RequestState
    error: failures.RequestError | None = None
    result: dict[str, Any] | None = None
    attempts: int = 0
    not_before: float = 0.0
    lease_owner: str | None = None
    lease_expires_at: float | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost: float = 0.0
    finished_at: float | None = None
    enqueued_tokens: int = 0
    started_at: float | None = None

    @property
    def is_open(self) -> bool:
        return not self.state.is_terminal


@dataclasses.dataclass
class _BatchRow:
    batch: batch_model.Batch
    request_ids: list[int]
    last_claimed_at: float = 0.0
    deleted_at: float | None = None
    # Retention: the tally kept when the rows are purged, and when that ended.
    frozen: StateTally | None = None
    purged_at: float | None = None


@dataclasses.dataclass
class _KeyRow:
    key: keys.ApiKey
    key_hash: str


@dataclasses.dataclass
class _FileRow:
    record: file_model.FileRecord
    chunks: list[bytes]
    deleted_at: float | None = None
    purged_at: float | None = None


MEMORY_REVISION = "memory"

# A lost lease requeues its request or errors it: what may make both moves.
_LOSABLE = state_rules.request_sources(RequestState.QUEUED, RequestState.ERRORED)


class MemoryJobStore(MemoryWebhooks):
    """A :class:`batchgate.store.port.JobStore` kept in dictionaries."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._keys: dict[str, _KeyRow] = {}
        self._files: dict[str, _FileRow] = {}
        self._batches: dict[str, _BatchRow] = {}
        self._requests: dict[int, _Request] = {}
        self._next_request_id = 1
        self._workers: dict[str, workers.WorkerHeartbeat] = {}
        MemoryWebhooks.__init__(self)

    def close(self) -> None:
        """Nothing to release; kept for the port."""

    # -- API keys -------------------------------------------------------------
    def create_key(
        self,
        name: str,
        key_hash: str,
        prefix: str,
        now: float,
        *,
        admin: bool = False,
        expires_at: float | None = None,
        quotas: keys.KeyQuotas | None = None,
    ) -> keys.ApiKey:
        key = keys.new_key(name, prefix, now, admin=admin, expires_at=expires_at, quotas=quotas)
        with self._lock:
            if any(row.key_hash == key_hash for row in self._keys.values()):
                raise domain_errors.Conflict("an API key with this secret already exists")
            self._keys[key.id] = _KeyRow(key, key_hash)
        return key

    def get_key(self, key_id: str) -> keys.ApiKey | None:
        with self._lock:
            row = self._keys.get(key_id)
            return None if row is None else row.key

    def list_keys(self) -> list[keys.ApiKey]:
        with self._lock:
            return sorted((row.key for row in self._keys.values()), key=_key_order)

    def revoke_key(self, key_id: str, now: float) -> keys.Revocation:
        def active_admin(key: keys.ApiKey) -> bool:
            return key.admin and key.revoked_at is None and not key.is_expired(now)

        with self._lock:
            row = self._keys.get(key_id)
            if row is None or row.key.revoked_at is not None:
                return keys.Revocation.NOT_ACTIVE
            if active_admin(row.key) and sum(active_admin(r.key) for r in self._keys.values()) <= 1:
                return keys.Revocation.LAST_ADMIN
            row.key = dataclasses.replace(row.key, revoked_at=now)
            return keys.Revocation.REVOKED

    def keys_with_prefix(self, prefix: str) -> list[tuple[keys.ApiKey, str]]:
        with self._lock:
            return [
                (row.key, row.key_hash) for row in self._keys.values() if row.key.prefix == prefix
            ]

    def count_active_keys(self) -> int:
        with self._lock:
            return sum(1 for row in self._keys.values() if row.key.revoked_at is None)

    # -- files ----------------------------------------------------------------
    def create_file(
        self,
        record: file_model.FileRecord,
        chunks: Iterable[bytes],
        admission: quotas.Admission | None = None,
    ) -> file_model.FileRecord:
        with self._lock:
            return self._insert_file(record, chunks, admission)

    def _insert_file(
        self,
        record: file_model.FileRecord,
        chunks: Iterable[bytes],
        admission: quotas.Admission | None,
    ) -> file_model.FileRecord:
        content = [bytes(chunk) for chunk in chunks if chunk]
        size = sum(len(chunk) for chunk in content)
        stored = dataclasses.replace(record, bytes=size or record.bytes)
        if stored.id in self._files:
            raise domain_errors.Conflict(f"a file with id {stored.id!r} already exists")
        if admission is not None:
            demand = quotas.Demand(bytes=stored.bytes)
            self._admit(record.owner, quotas.Admission(demand, admission.defaults))
        self._files[stored.id] = _FileRow(stored, content)
        return stored

    def get_file(self, file_id: str, owner: str) -> file_model.FileRecord | None:
        with self._lock:
            row = self._files.get(file_id)
            if row is None or row.deleted_at is not None or row.record.owner != owner:
                return None
            return row.record

    def list_files(
        self,
        owner: str,
        *,
        purpose: str | None,
        limit: int,
        after: str | None,
        ascending: bool,
        now: float | None = None,
    ) -> tuple[list[file_model.FileRecord], bool]:
        with self._lock:
            rows = [
                row.record
                for row in self._files.values()
                if row.record.owner == owner
                and row.deleted_at is None
                and (not purpose or row.record.purpose == purpose)
                and (now is None or not row.record.is_expired(now))
            ]
            pivot = self._files.get(after) if after else None
        if pivot is not None and pivot.record.owner == owner:
            mark = _file_order(pivot.record)
            rows = [
                r for r in rows if (_file_order(r) > mark if ascending else _file_order(r) < mark)
            ]
        rows.sort(key=_file_order, reverse=not ascending)
        return pages.page(rows, limit)

    def iter_file_chunks(self, file_id: str) -> Iterator[bytes]:
        with self._lock:
            row = self._files.get(file_id)
            chunks = [] if row is None else list(row.chunks)
        yield from chunks

    def delete_file(self, file_id: str, owner: str, now: float) -> bool:
        with self._lock:
            row = self._files.get(file_id)
            if row is None or row.deleted_at is not None or row.record.owner != owner:
                return False
            row.deleted_at = now
            row.chunks = []
            return True

    def set_file_bytes(self, file_id: str, size: int) -> None:
        with self._lock:
            row = self._files.get(file_id)
            if row is not None:
                row.record = dataclasses.replace(
                    row.record, bytes=size, status=file_model.FileStatus.PROCESSED
                )

    # -- batches --------------------------------------------------------------
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
            row = _BatchRow(stored_batch, [])
            for index, request in enumerate(new):
                stored = _Request(
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
            self._batches[batch.id] = _BatchRow(failed, [])
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
                mark = _batch_order(pivot.batch)
                rows = [
                    row
                    for row in rows
                    if (_batch_order(row.batch) < mark if older else _batch_order(row.batch) > mark)
                ]
            upwards = pages.walks_upwards(after, before)
            rows.sort(key=lambda row: _batch_order(row.batch), reverse=not upwards)
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
            )

    def iter_requests(
        self, batch_id: str, states: Sequence[RequestState]
    ) -> Iterator[rerun.StoredRequest]:
        for request in self._rows_of(batch_id, states):
            yield rerun.StoredRequest(
                request.custom_id, request.model, request.params, request.state, request.error
            )

    # -- the queue ------------------------------------------------------------
    def claim(
        self, model: str, n: int, worker_id: str, now: float, lease_seconds: float
    ) -> list[batch_model.ClaimedRequest]:
        if n <= 0:
            return []
        with self._lock:
            ready: dict[str, list[_Request]] = {}
            for row in self._batches.values():
                if row.batch.status is not BatchStatus.IN_PROGRESS:
                    continue
                queued = [
                    request
                    for request in (self._requests[i] for i in row.request_ids)
                    if request.model == model
                    and state_rules.can_move_request(request.state, RequestState.RUNNING)
                    and request.not_before <= now
                ]
                if queued:
                    ready[row.batch.id] = queued
            candidates = [
                fairness.Candidate(
                    batch_id,
                    self._batches[batch_id].batch.owner,
                    self._batches[batch_id].last_claimed_at,
                )
                for batch_id in ready
            ]
            claimed: list[batch_model.ClaimedRequest] = []
            for batch_id, share in fairness.fair_shares(candidates, n).items():
                picked = sorted(ready[batch_id], key=lambda request: request.id)[:share]
                for request in picked:
                    request.state = RequestState.RUNNING
                    request.lease_owner = worker_id
                    request.lease_expires_at = now + lease_seconds
                    request.attempts += 1
                    request.started_at = now
                    claimed.append(
                        batch_model.ClaimedRequest(
                            id=request.id,
                            batch_id=batch_id,
                            custom_id=request.custom_id,
                            model=request.model,
                            params=request.params,
                            attempt=request.attempts,
                        )
                    )
                if picked:
                    self._batches[batch_id].last_claimed_at = now
        claimed.sort(key=lambda request: request.id)
        return claimed

    def extend_leases(
        self, worker_id: str, request_ids: Iterable[int], now: float, lease_seconds: float
    ) -> set[int]:
        held: set[int] = set()
        with self._lock:
            for request_id in set(request_ids):
                request = self._requests.get(request_id)
                if request is not None and self._holds(request, worker_id):
                    request.lease_expires_at = now + lease_seconds
                    held.add(request_id)
        return held

    def held_request_ids(self, worker_id: str) -> set[int]:
        with self._lock:
            return {r.id for r in self._requests.values() if self._holds(r, worker_id)}

    def record_outcomes(self, outcomes: Sequence[batch_model.Outcome], now: float) -> list[bool]:
        applied: dict[int, bool] = {}
        with self._lock:
            for outcome in outcomes:
                request = self._requests.get(outcome.request_id)
                fenced = (
                    request is not None
                    and self._holds(request, outcome.worker_id)
                    and request.attempts == outcome.attempt
                    and state_rules.can_move_request(request.state, outcome.state)
                )
                applied[outcome.request_id] = fenced
                if request is None or not fenced:
                    continue
                request.lease_owner = None
                request.lease_expires_at = None
                request.error = outcome.error
                if outcome.state is RequestState.QUEUED:
                    request.state = RequestState.QUEUED
                    request.not_before = outcome.not_before
                    request.attempts -= 1 if outcome.refund_attempt else 0
                else:
                    request.state = outcome.state
                    request.result = outcome.result
                    request.input_tokens = outcome.input_tokens
                    request.output_tokens = outcome.output_tokens
                    request.cached_tokens = outcome.cached_tokens
                    request.reasoning_tokens = outcome.reasoning_tokens
                    request.cost = outcome.cost
                    request.finished_at = now
        return [applied[outcome.request_id] for outcome in outcomes]

    def requeue_lost_leases(self, now: float, policy: retry.RetryPolicy) -> int:
        moved = 0
        with self._lock:
            for request in self._requests.values():
                lost = (
                    request.state in _LOSABLE
                    and request.lease_expires_at is not None
                    and request.lease_expires_at < now
                )
                if not lost:
                    continue
                moved += 1
                request.lease_owner = None
                request.lease_expires_at = None
                decision = policy.decide(retry.LOST_LEASE, request.attempts)
                if isinstance(decision, retry.GiveUp):
                    request.state = RequestState.ERRORED
                    request.finished_at = now
                    request.error = failures.lost_lease(request.attempts)
                else:
                    request.state = RequestState.QUEUED
                    request.not_before = now + decision.delay
                    request.attempts -= int(decision.refund_attempt)
        return moved

    def expire_batches(self, now: float) -> list[str]:
        expired: list[str] = []
        with self._lock:
            for row in self._batches.values():
                if row.batch.expires_at <= now and self._move(row, BatchStatus.EXPIRED, now):
                    self._end_open_requests(row, RequestState.EXPIRED, now)
                    self._add_result_files(row, now)
                    self._add_batch_event(row.batch.id, row.batch.owner, BatchStatus.EXPIRED, now)
                    expired.append(row.batch.id)
        return expired

    def finalize_batches(self, now: float, batch_ids: Iterable[str] | None = None) -> list[str]:
        ended: list[str] = []
        with self._lock:
            wanted = self._batches.keys() if batch_ids is None else set(batch_ids)
            for batch_id in list(wanted):
                row = self._batches.get(batch_id)
                if row is None or row.batch.status not in state_rules.SETTLED_BATCH_STATUS:
                    continue
                if any(self._requests[i].is_open for i in row.request_ids):
                    continue
                target = state_rules.SETTLED_BATCH_STATUS[row.batch.status]
                self._move(row, target, now)
                if target is BatchStatus.COMPLETED:
                    row.batch = dataclasses.replace(row.batch, finalizing_at=now)
                self._add_result_files(row, now)
                self._add_batch_event(batch_id, row.batch.owner, target, now)
                ended.append(batch_id)
        return ended

    # -- dry-run estimates ----------------------------------------------------
    def recent_work(self, model: str, since: float) -> estimate.RecentWork:
        with self._lock:
            done = [
                request
                for request in self._requests.values()
                if request.model == model
                and request.state is RequestState.SUCCEEDED
                and request.finished_at is not None
                and request.finished_at >= since
            ]
            if not done:
                return estimate.RecentWork()
            first = min(request.started_at or request.finished_at or 0.0 for request in done)
            last = max(request.finished_at or 0.0 for request in done)
            tokens = sum(request.input_tokens + request.output_tokens for request in done)
            return estimate.RecentWork(len(done), tokens, max(last - first, 0.0))

    # -- retention ------------------------------------------------------------
    def reclaim_space(self) -> None:
        """Nothing to reclaim: purged rows are gone from the dictionaries."""

    def purge_step(self, now: float, max_rows: int) -> int:
        with self._lock:
            due = [
                row
                for row in self._batches.values()
                if row.purged_at is None
                and row.batch.results_expire_at is not None
                and row.batch.results_expire_at <= now
            ]
            if due:
                row = min(due, key=lambda item: item.batch.results_expire_at or 0.0)
                if row.frozen is None:
                    row.frozen = self._tally(row)
                doomed, row.request_ids = row.request_ids[:max_rows], row.request_ids[max_rows:]
                for request_id in doomed:
                    del self._requests[request_id]
                if len(doomed) == max_rows:
                    return len(doomed)
                row.purged_at = now
                self._purge_batch_deliveries(row.batch.id)
                for kind in result_files.RESULT_KINDS:
                    result_file = self._files.get(result_files.file_id(row.batch.id, kind))
                    if result_file is not None:
                        result_file.purged_at = now
                return len(doomed) + 1
            files = [
                row
                for row in self._files.values()
                if row.purged_at is None
                and row.record.kind is file_model.FileKind.STORED
                and row.record.is_expired(now)
            ]
            if not files:
                return 0
            expired = min(files, key=lambda item: item.record.expires_at or 0.0)
            removed = len(expired.chunks)
            expired.chunks = []
            expired.purged_at = now
            return removed + 1

    # -- figures for operators ------------------------------------------------
    def model_stats(
        self, now: float, *, window_seconds: float = 300.0, owner: str | None = None
    ) -> list[stats.ModelStats]:
        parts: dict[str, stats.ModelTally] = {}
        oldest: dict[str, float] = {}
        with self._lock:
            for request in self._requests.values():
                batch = self._batches[request.batch_id].batch
                if owner is not None and batch.owner != owner:
                    continue
                finished = request.finished_at
                queued = request.state is RequestState.QUEUED
                if not request.state.is_terminal:
                    parts.setdefault(request.model, stats.ModelTally()).add(
                        request.state, 1, waiting=int(queued and request.not_before > now)
                    )
                elif finished is not None and finished >= now - window_seconds:
                    parts.setdefault(request.model, stats.ModelTally()).add_recent(
                        request.state,
                        1,
                        input_tokens=request.input_tokens,
                        output_tokens=request.output_tokens,
                        cost=request.cost,
                    )
                if queued:
                    oldest[request.model] = min(
                        oldest.get(request.model, batch.created_at), batch.created_at
                    )
        return [
            tally.stats(model, oldest_queued_at=oldest.get(model), window_seconds=window_seconds)
            for model, tally in sorted(parts.items())
        ]

    def batch_status_counts(self, owner: str | None = None) -> dict[BatchStatus, int]:
        counts: dict[BatchStatus, int] = {}
        with self._lock:
            for row in self._batches.values():
                if row.deleted_at is None and (owner is None or row.batch.owner == owner):
                    counts[row.batch.status] = counts.get(row.batch.status, 0) + 1
        return counts

    def record_worker(self, heartbeat: workers.WorkerHeartbeat) -> None:
        with self._lock:
            self._workers[heartbeat.id] = heartbeat

    def list_workers(self, *, seen_since: float | None = None) -> list[workers.WorkerHeartbeat]:
        with self._lock:
            seen = [
                worker
                for worker in self._workers.values()
                if seen_since is None or worker.last_seen_at >= seen_since
            ]
        return sorted(seen, key=lambda worker: (-worker.last_seen_at, worker.id))

    def retire_workers(self, stopped_before: float) -> int:
        with self._lock:
            done = [
                worker
                for worker in self._workers.values()
                if worker.stopped_at is not None
                and worker.last_seen_at < stopped_before
                and worker.id != workers.RETIRED_ID
            ]
            if done:
                folded = workers.retire(done, self._workers.get(workers.RETIRED_ID))
                for worker in done:
                    del self._workers[worker.id]
                self._workers[folded.id] = folded
        return len(done)

    def schema_revision(self) -> tuple[str | None, str]:
        """There is no schema to migrate: always current."""
        return MEMORY_REVISION, MEMORY_REVISION

    # -- helpers (called with the lock held) ----------------------------------
    def enqueued_tokens(self, owner: str, models: Sequence[str]) -> dict[str, int]:
        with self._lock:
            return self._enqueued(owner, models)

    def check_admission(self, owner: str, admission: quotas.Admission) -> None:
        with self._lock:
            self._admit(owner, admission)

    def _enqueued(self, owner: str, models: Sequence[str]) -> dict[str, int]:
        wanted = set(models)
        tokens: dict[str, int] = {}
        for batch_row in self._batches.values():
            if batch_row.batch.owner != owner or batch_row.deleted_at is not None:
                continue
            if batch_row.batch.status.is_ended:
                continue
            for request_id in batch_row.request_ids:
                request = self._requests[request_id]
                if request.model in wanted and request.is_open:
                    tokens[request.model] = tokens.get(request.model, 0) + request.enqueued_tokens
        return tokens

    def _admit(self, owner: str, admission: quotas.Admission) -> None:
        """Raise unless the demand fits the owner's quotas (domain/quotas.py)."""
        row = self._keys.get(owner)
        limits = (keys.KeyQuotas() if row is None else row.key.quotas).over(admission.defaults)
        active = [
            batch_row
            for batch_row in self._batches.values()
            if batch_row.batch.owner == owner
            and batch_row.deleted_at is None
            and not batch_row.batch.status.is_ended
        ]
        tokens = self._enqueued(owner, quotas.needs_tokens(limits, admission.demand))
        stored = sum(
            file_row.record.bytes
            for file_row in self._files.values()
            if file_row.record.owner == owner
            and file_row.deleted_at is None
            and file_row.purged_at is None
            and file_row.record.kind is file_model.FileKind.STORED
        )
        usage = quotas.Usage(
            enqueued_tokens=tokens, active_batches=len(active), stored_bytes=stored
        )
        quotas.check(owner, limits, usage, admission.demand)

    def _live_batch(self, batch_id: str, owner: str | None) -> _BatchRow | None:
        row = self._batches.get(batch_id)
        if row is None or row.deleted_at is not None:
            return None
        if owner is not None and row.batch.owner != owner:
            return None
        return row

    def _move(self, row: _BatchRow, target: BatchStatus, now: float) -> bool:
        """Move a batch along domain/states.py's table; False if it may not."""
        if not state_rules.can_transition(row.batch.status, target):
            return False
        stamp = {batch_model.STATUS_STAMPS[target]: now}
        row.batch = dataclasses.replace(row.batch, status=target, **stamp)  # type: ignore[arg-type]
        return True

    def _end_open_requests(self, row: _BatchRow, state: RequestState, now: float) -> None:
        for request_id in row.request_ids:
            request = self._requests[request_id]
            if state_rules.can_move_request(request.state, state):
                request.state = state
                request.lease_owner = None
                request.finished_at = now

    def _add_result_files(self, row: _BatchRow, now: float) -> None:
        """What ending a batch does besides its status: its results start to
        age, and an OpenAI batch gets its result files (expiring with them)."""
        expire_at = retention.expiry(now, row.batch.results_ttl)
        row.batch = dataclasses.replace(row.batch, results_expire_at=expire_at)
        batch = row.batch
        if batch.dialect not in result_files.DIALECTS:
            return
        for kind in result_files.kinds_present(self._tally(row)):
            record = result_files.record(batch.id, batch.owner, kind, now, expire_at)
            self._files[record.id] = _FileRow(record, [])

    def _tally(self, row: _BatchRow) -> StateTally:
        by_state: dict[RequestState, int] = {}
        input_tokens = output_tokens = cached_tokens = reasoning_tokens = 0
        cost = 0.0
        for request_id in row.request_ids:
            request = self._requests[request_id]
            by_state[request.state] = by_state.get(request.state, 0) + 1
            input_tokens += request.input_tokens
            output_tokens += request.output_tokens
            cached_tokens += request.cached_tokens
            reasoning_tokens += request.reasoning_tokens
            cost += request.cost
        return StateTally(
            by_state, input_tokens, output_tokens, cost, cached_tokens, reasoning_tokens
        )

    def _with_tally(self, row: _BatchRow) -> batch_model.Batch:
        tally = row.frozen if row.frozen is not None else self._tally(row)
        return dataclasses.replace(row.batch, tally=tally)

    def _rows_of(self, batch_id: str, states: Sequence[RequestState] | None) -> list[_Request]:
        with self._lock:
            row = self._batches.get(batch_id)
            if row is None:
                return []
            return [
                dataclasses.replace(self._requests[i])
                for i in row.request_ids
                if not states or self._requests[i].state in states
            ]

    def _running_batches(self) -> list[tuple[str, str, int, int]]:
        return [
            (
                row.batch.id,
                row.batch.owner,
                len(row.request_ids),
                sum(not self._requests[i].is_open for i in row.request_ids),
            )
            for row in self._batches.values()
            if row.batch.status is BatchStatus.IN_PROGRESS and row.deleted_at is None
        ]

    @staticmethod
    def _holds(request: _Request, worker_id: str) -> bool:
        return request.state is RequestState.RUNNING and request.lease_owner == worker_id


def _key_order(key: keys.ApiKey) -> tuple[float, str]:
    return (key.created_at, key.id)


def _file_order(record: file_model.FileRecord) -> tuple[float, str]:
    return (record.created_at, record.id)


def _batch_order(batch: batch_model.Batch) -> tuple[float, str]:
    return (batch.created_at, batch.id)


if TYPE_CHECKING:
    # mypy holds the class to the port: a method the port gains and this
    # store lacks fails the lint, not a test run.
    _CONFORMS: port.JobStore = MemoryJobStore()
