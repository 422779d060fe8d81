"""The JobStore port: everything batchgate keeps, and the queue it works from.

Every implementation passes the same contract suite (tests/contract/). Methods
are synchronous; async callers run them in a thread (``asyncio.to_thread``),
which keeps one implementation usable from the CLI, the API and the worker.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol

from batchgate.domain import batch as batch_model
from batchgate.domain import estimate, keys, quotas, rerun, retry, stats, workers
from batchgate.domain import webhooks as wh
from batchgate.domain.counts import StateTally
from batchgate.domain.failures import InputError
from batchgate.domain.files import FileRecord
from batchgate.domain.keys import ApiKey
from batchgate.domain.states import BatchStatus, Dialect, RequestState


class JobStore(Protocol):
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
    ) -> ApiKey: ...
    def get_key(self, key_id: str) -> ApiKey | None: ...
    def list_keys(self) -> list[ApiKey]: ...
    def revoke_key(self, key_id: str, now: float) -> keys.Revocation:
        """Revoke the key unless it is the last active (unrevoked, unexpired
        at ``now``) admin key: the check and the revocation are one
        transaction, so concurrent revokes cannot remove the last two admins."""
        ...

    def keys_with_prefix(self, prefix: str) -> list[tuple[ApiKey, str]]: ...
    def count_active_keys(self) -> int: ...

    # -- files ----------------------------------------------------------------
    def create_file(
        self,
        record: FileRecord,
        chunks: Iterable[bytes],
        admission: quotas.Admission | None = None,
    ) -> FileRecord: ...
    def get_file(self, file_id: str, owner: str) -> FileRecord | None: ...
    def list_files(
        self,
        owner: str,
        *,
        purpose: str | None,
        limit: int,
        after: str | None,
        ascending: bool,
        now: float | None = None,
    ) -> tuple[list[FileRecord], bool]: ...
    def iter_file_chunks(self, file_id: str) -> Iterator[bytes]: ...
    def delete_file(self, file_id: str, owner: str, now: float) -> bool: ...
    def set_file_bytes(self, file_id: str, size: int) -> None: ...

    # -- batches --------------------------------------------------------------
    def create_batch(
        self,
        batch: batch_model.Batch,
        requests: Iterable[batch_model.NewRequest],
        admission: quotas.Admission | None = None,
        input_file: tuple[FileRecord, Iterable[bytes]] | None = None,
    ) -> None: ...
    def enqueued_tokens(self, owner: str, models: Sequence[str]) -> dict[str, int]:
        """Input tokens in the owner's queued and running requests, per model."""
        ...

    def check_admission(self, owner: str, admission: quotas.Admission) -> None:
        """Raise as ``create_batch`` would for ``admission``, on the usage
        committed now; stores and locks nothing (a dry run's check)."""
        ...

    def fail_batch(
        self, batch: batch_model.Batch, errors: list[InputError], now: float
    ) -> None: ...
    def get_batch(self, batch_id: str, owner: str | None = None) -> batch_model.Batch | None: ...
    def list_batches(
        self,
        owner: str | None,
        *,
        limit: int,
        after: str | None = None,
        before: str | None = None,
        dialects: Sequence[Dialect] | None = None,
    ) -> tuple[list[batch_model.Batch], bool]: ...
    def cancel_batch(self, batch_id: str, owner: str, now: float) -> batch_model.Batch | None: ...
    def delete_batch(self, batch_id: str, owner: str, now: float) -> bool: ...
    def tally(self, batch_id: str) -> StateTally: ...
    def iter_results(
        self,
        batch_id: str,
        states: Sequence[RequestState] | None = None,
        *,
        with_params: bool = False,
    ) -> Iterator[batch_model.ResultRow]: ...
    def iter_requests(
        self, batch_id: str, states: Sequence[RequestState]
    ) -> Iterator[rerun.StoredRequest]: ...

    # -- the queue ------------------------------------------------------------
    def claim(
        self, model: str, n: int, worker_id: str, now: float, lease_seconds: float
    ) -> list[batch_model.ClaimedRequest]: ...
    def extend_leases(
        self, worker_id: str, request_ids: Iterable[int], now: float, lease_seconds: float
    ) -> set[int]: ...
    def held_request_ids(self, worker_id: str) -> set[int]: ...
    def record_outcomes(
        self, outcomes: Sequence[batch_model.Outcome], now: float
    ) -> list[bool]: ...
    def requeue_lost_leases(self, now: float, policy: retry.RetryPolicy) -> int: ...
    def expire_batches(self, now: float) -> list[str]: ...
    def finalize_batches(self, now: float, batch_ids: Iterable[str] | None = None) -> list[str]: ...

    # -- figures for operators (metrics, dashboard) ------------------------------
    def model_stats(
        self, now: float, *, window_seconds: float = 300.0, owner: str | None = None
    ) -> list[stats.ModelStats]: ...
    def batch_status_counts(self, owner: str | None = None) -> dict[BatchStatus, int]: ...
    def record_worker(self, heartbeat: workers.WorkerHeartbeat) -> None: ...
    def list_workers(self, *, seen_since: float | None = None) -> list[workers.WorkerHeartbeat]: ...
    def retire_workers(self, stopped_before: float) -> int: ...
    def schema_revision(self) -> tuple[str | None, str]: ...

    # -- webhooks -------------------------------------------------------------
    # Every method above that ends a batch (finalize_batches, expire_batches,
    # fail_batch) writes its webhook deliveries in the same transaction.
    def create_webhook_endpoint(self, endpoint: wh.Endpoint, secret: str) -> wh.Endpoint: ...
    def get_webhook_endpoint(self, endpoint_id: str, owner: str) -> wh.Endpoint | None: ...
    def list_webhook_endpoints(self, owner: str) -> list[wh.Endpoint]: ...
    def delete_webhook_endpoint(self, endpoint_id: str, owner: str, now: float) -> bool: ...
    def list_webhook_deliveries(
        self,
        endpoint_id: str,
        *,
        limit: int,
        after: str | None = None,
        status: wh.DeliveryStatus | None = None,
    ) -> tuple[list[wh.Delivery], bool]: ...
    def claim_webhook_deliveries(
        self, worker_id: str, n: int, now: float, lease_seconds: float
    ) -> list[wh.ClaimedDelivery]: ...
    def record_webhook_attempt(self, result: wh.AttemptResult, now: float) -> bool: ...
    def add_progress_events(self, now: float | None = None) -> int: ...

    # -- retention ------------------------------------------------------------
    def purge_step(self, now: float, max_rows: int) -> int: ...
    def reclaim_space(self) -> None: ...

    # -- dry-run estimates ----------------------------------------------------
    def recent_work(self, model: str, since: float) -> estimate.RecentWork: ...

    def close(self) -> None: ...
