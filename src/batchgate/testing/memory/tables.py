"""The in-memory store's rows and the rules more than one role applies
(quota admission, moving a batch along domain/states.py's table, ending
its open requests, result files, tallies, the outbox rows a batch's end
writes). Every role class in this package shares one instance of these
dictionaries and one lock; each public call holds the lock, so it is atomic
like a transaction."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from batchgate.domain import batch as batch_model
from batchgate.domain import errors as domain_errors
from batchgate.domain import failures, keys, quotas, result_files, retention, workers
from batchgate.domain import files as file_model
from batchgate.domain import states as state_rules
from batchgate.domain import upstream_jobs as uj
from batchgate.domain import webhooks as wh
from batchgate.domain.counts import StateTally
from batchgate.domain.states import BatchStatus, RequestState


@dataclasses.dataclass
class RequestRow:
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
    generating_at: float | None = None
    # A provider-batch model's row: the job that holds or last held it, and
    # the path that serves it (domain/upstream_jobs.py Path; None: a job's).
    upstream_job_id: str | None = None
    route: str | None = None

    @property
    def is_open(self) -> bool:
        return not self.state.is_terminal


@dataclasses.dataclass
class BatchRow:
    batch: batch_model.Batch
    request_ids: list[int]
    last_claimed_at: float = 0.0
    deleted_at: float | None = None
    # Retention: the tally kept when the rows are purged, and when that ended.
    frozen: StateTally | None = None
    purged_at: float | None = None


@dataclasses.dataclass
class KeyRow:
    key: keys.ApiKey
    key_hash: str


@dataclasses.dataclass
class FileRow:
    record: file_model.FileRecord
    chunks: list[bytes]
    deleted_at: float | None = None
    purged_at: float | None = None


@dataclasses.dataclass
class DeliveryRow:
    delivery: wh.Delivery
    dedupe_key: str
    lease_owner: str | None = None
    lease_expires_at: float | None = None


MEMORY_REVISION = "memory"


class MemoryTables:
    """The dictionaries, the lock, and the shared rules."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._keys: dict[str, KeyRow] = {}
        self._ended_sessions: dict[str, float] = {}  # session id -> its expiry
        self._files: dict[str, FileRow] = {}
        self._batches: dict[str, BatchRow] = {}
        self._requests: dict[int, RequestRow] = {}
        self._next_request_id = 1
        self._workers: dict[str, workers.WorkerHeartbeat] = {}
        self._endpoints: dict[str, tuple[wh.Endpoint, str]] = {}  # id -> (endpoint, secret)
        self._deleted_endpoints: set[str] = set()
        self._deliveries: dict[str, DeliveryRow] = {}
        self._jobs: dict[str, uj.UpstreamJob] = {}

    @staticmethod
    def _holds(request: RequestRow, owner: str) -> bool:
        """The row is running under ``owner``'s lease: a worker's, or an
        upstream job's (its id)."""
        return request.state is RequestState.RUNNING and request.lease_owner == owner

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
        self._files[stored.id] = FileRow(stored, content)
        return stored

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

    def _move(self, row: BatchRow, target: BatchStatus, now: float) -> bool:
        """Move a batch along domain/states.py's table; False if it may not."""
        if not state_rules.can_transition(row.batch.status, target):
            return False
        stamp = {batch_model.STATUS_STAMPS[target]: now}
        row.batch = dataclasses.replace(row.batch, status=target, **stamp)  # type: ignore[arg-type]
        return True

    def _end_open_requests(self, row: BatchRow, state: RequestState, now: float) -> None:
        for request_id in row.request_ids:
            request = self._requests[request_id]
            if state_rules.can_move_request(request.state, state):
                request.state = state
                request.lease_owner = None
                request.finished_at = now

    def _add_result_files(self, row: BatchRow, now: float) -> None:
        """What ending a batch does besides its status: its results start to
        age, and an OpenAI batch gets its result files (expiring with them)."""
        expire_at = retention.expiry(now, row.batch.results_ttl)
        row.batch = dataclasses.replace(row.batch, results_expire_at=expire_at)
        batch = row.batch
        if batch.dialect not in result_files.DIALECTS:
            return
        for kind in result_files.kinds_present(self._tally(row)):
            record = result_files.record(batch.id, batch.owner, kind, now, expire_at)
            self._files[record.id] = FileRow(record, [])

    def _tally(self, row: BatchRow) -> StateTally:
        by_state: dict[RequestState, int] = {}
        input_tokens = output_tokens = cached_tokens = reasoning_tokens = 0
        cost = 0.0
        generating = 0
        for request_id in row.request_ids:
            request = self._requests[request_id]
            by_state[request.state] = by_state.get(request.state, 0) + 1
            if request.state is RequestState.RUNNING and request.generating_at is not None:
                generating += 1
            input_tokens += request.input_tokens
            output_tokens += request.output_tokens
            cached_tokens += request.cached_tokens
            reasoning_tokens += request.reasoning_tokens
            cost += request.cost
        return StateTally(
            by_state, input_tokens, output_tokens, cost, cached_tokens, reasoning_tokens, generating
        )

    def _with_tally(self, row: BatchRow) -> batch_model.Batch:
        tally = row.frozen if row.frozen is not None else self._tally(row)
        return dataclasses.replace(row.batch, tally=tally)

    def _running_batches(self) -> list[tuple[str, str, int, int]]:
        """(batch id, owner, total, finished) of every in-progress batch."""
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

    def _add_batch_event(self, batch_id: str, owner: str, status: BatchStatus, now: float) -> None:
        for delivery in wh.ended_deliveries(batch_id, status, self._live_endpoints(owner), now):
            self._insert(delivery)

    def _insert(self, new: wh.NewDelivery) -> bool:
        """Add an outbox row unless its (endpoint, batch, dedupe key) exists."""
        key = (new.endpoint_id, new.batch_id, new.dedupe_key)
        if any(
            (r.delivery.endpoint_id, r.delivery.batch_id, r.dedupe_key) == key
            for r in self._deliveries.values()
        ):
            return False
        delivery = wh.Delivery(
            id=new.id,
            endpoint_id=new.endpoint_id,
            event_id=new.event_id,
            event_type=new.event_type,
            batch_id=new.batch_id,
            data=dict(new.data),
            status=wh.DeliveryStatus.PENDING,
            attempts=0,
            created_at=new.created_at,
            next_attempt_at=new.created_at,
            last_attempt_at=None,
            last_status_code=None,
            last_error=None,
            delivered_at=None,
        )
        self._deliveries[delivery.id] = DeliveryRow(delivery, new.dedupe_key)
        return True

    def _purge_batch_deliveries(self, batch_id: str) -> None:
        """As the SQL store's retention purge: settled deliveries go."""
        for delivery_id, row in list(self._deliveries.items()):
            if (
                row.delivery.batch_id == batch_id
                and row.delivery.status is not wh.DeliveryStatus.PENDING
            ):
                del self._deliveries[delivery_id]

    def _live_endpoints(self, owner: str) -> list[wh.Endpoint]:
        return [
            endpoint
            for endpoint, _ in self._endpoints.values()
            if endpoint.owner == owner and endpoint.id not in self._deleted_endpoints
        ]


def key_order(key: keys.ApiKey) -> tuple[float, str]:
    return (key.created_at, key.id)


def file_order(record: file_model.FileRecord) -> tuple[float, str]:
    return (record.created_at, record.id)


def batch_order(batch: batch_model.Batch) -> tuple[float, str]:
    return (batch.created_at, batch.id)
