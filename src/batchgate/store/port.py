"""The JobStore port: everything batchgate keeps, and the queue it works from.

Every implementation passes the same contract suite (tests/contract/). Methods
are synchronous; async callers run them in a thread (``asyncio.to_thread``),
which keeps one implementation usable from the CLI, the API and the worker.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol

from batchgate.domain import batch as batch_model
from batchgate.domain.counts import StateTally
from batchgate.domain.states import Dialect, RequestState


@dataclasses.dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    prefix: str
    created_at: float
    revoked_at: float | None


@dataclasses.dataclass(frozen=True)
class FileRecord:
    id: str
    owner: str
    purpose: str
    filename: str
    bytes: int
    status: str
    created_at: float
    batch_id: str | None = None
    # "stored": content in file_chunks; "output"/"errors": rendered on demand
    # from the batch's request rows (domain/result_files.py).
    kind: str = "stored"


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What one attempt at one request came to, written fenced on the lease.

    ``state`` queued means "retry later, not before ``not_before``"; a
    terminal state ends the request.
    """

    request_id: int
    attempt: int
    worker_id: str
    state: RequestState
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    not_before: float = 0.0
    # A call made only to probe an upstream that looks down does not use up
    # one of the request's attempts.
    refund_attempt: bool = False


class JobStore(Protocol):
    # -- API keys -------------------------------------------------------------
    def create_key(self, name: str, key_hash: str, prefix: str, now: float) -> ApiKey: ...
    def list_keys(self) -> list[ApiKey]: ...
    def revoke_key(self, key_id_or_name: str, now: float) -> int: ...
    def keys_with_prefix(self, prefix: str) -> list[tuple[ApiKey, str]]: ...
    def count_active_keys(self) -> int: ...

    # -- files ----------------------------------------------------------------
    def create_file(self, record: FileRecord, chunks: Iterable[bytes]) -> FileRecord: ...
    def get_file(self, file_id: str, owner: str) -> FileRecord | None: ...
    def list_files(
        self, owner: str, *, purpose: str | None, limit: int, after: str | None, ascending: bool
    ) -> tuple[list[FileRecord], bool]: ...
    def iter_file_chunks(self, file_id: str) -> Iterator[bytes]: ...
    def delete_file(self, file_id: str, owner: str, now: float) -> bool: ...
    def set_file_bytes(self, file_id: str, size: int) -> None: ...

    # -- batches --------------------------------------------------------------
    def create_batch(
        self, batch: batch_model.Batch, requests: Iterable[batch_model.NewRequest]
    ) -> None: ...
    def fail_batch(
        self, batch: batch_model.Batch, errors: list[dict[str, Any]], now: float
    ) -> None: ...
    def get_batch(self, batch_id: str, owner: str | None = None) -> batch_model.Batch | None: ...
    def list_batches(
        self,
        owner: str,
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
        self, batch_id: str, states: Sequence[RequestState] | None = None
    ) -> Iterator[batch_model.ResultRow]: ...

    # -- the queue ------------------------------------------------------------
    def claim(
        self, model: str, n: int, worker_id: str, now: float, lease_seconds: float
    ) -> list[batch_model.ClaimedRequest]: ...
    def extend_leases(
        self, worker_id: str, request_ids: Iterable[int], now: float, lease_seconds: float
    ) -> set[int]: ...
    def held_request_ids(self, worker_id: str) -> set[int]: ...
    def record_outcomes(self, outcomes: Sequence[Outcome], now: float) -> list[bool]: ...
    def requeue_lost_leases(self, now: float, max_attempts: int) -> int: ...
    def expire_batches(self, now: float) -> list[str]: ...
    def finalize_batches(self, now: float, batch_ids: Iterable[str] | None = None) -> list[str]: ...

    def close(self) -> None: ...
