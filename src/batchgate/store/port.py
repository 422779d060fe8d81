"""The store port, split by role: each consumer names only the roles it uses.

A role is a small Protocol over one concern (keys, files, batches, the queue,
the sweeps that end batches, webhook endpoints and their outbox, operator
figures, the worker registry, retention). :class:`JobStore` is every role at
once: what wiring opens and hands out (composition.py, the API's build_services),
and what each implementation provides. A consumer types its parameter as the
narrowest role, or a Protocol combining a few (``class _Store(port.BatchStore,
port.FileStore, Protocol)``), so its dependencies read off its signature.

Every implementation passes the same contract suite (tests/contract/, one file
per role). Methods are synchronous; async callers run them in a thread
(``asyncio.to_thread``), which keeps one implementation usable from the CLI,
the API and the worker.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol

from batchgate.domain import batch as batch_model
from batchgate.domain import estimate, keys, quotas, rerun, retry, stats, workers
from batchgate.domain import upstream_jobs as uj
from batchgate.domain import webhooks as wh
from batchgate.domain.counts import StateTally
from batchgate.domain.failures import InputError
from batchgate.domain.files import FileRecord
from batchgate.domain.keys import ApiKey
from batchgate.domain.states import BatchStatus, Dialect, RequestState


class KeyStore(Protocol):
    """API keys, stored hashed (services/keys.py, services/sessions.py).
    Contract: tests/contract/test_keys.py, test_session_store.py."""

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
    def end_session(self, session_id: str, expires_at: float, now: float) -> None:
        """Record a dashboard session as ended (logged out) until
        ``expires_at``, when its token stops verifying anyway; ended
        sessions past their expiry at ``now`` are forgotten."""
        ...

    def session_ended(self, session_id: str) -> bool: ...


class FileStore(Protocol):
    """Uploaded files (content chunked in the database) and the rows of
    rendered result files (services/files.py). Contract: test_files.py."""

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


class BatchStore(Protocol):
    """Batches as the client sees them: create (with quota admission), read,
    list, cancel, delete, and the read side of their requests. Contract:
    test_batches.py, test_quotas.py."""

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


class QueueStore(Protocol):
    """Requests as work: claimed under a lease, heartbeated, written back
    fenced on the lease, requeued when the lease is lost (worker/).
    Contract: test_queue.py, test_request_transitions.py."""

    def claim(
        self,
        model: str,
        n: int,
        worker_id: str,
        now: float,
        lease_seconds: float,
        route: str | None = None,
    ) -> list[batch_model.ClaimedRequest]:
        """Lease up to ``n`` queued rows of ``model`` whose ``route`` is
        ``route`` (None: unset; a provider-batch model's real-time lane claims
        only rows that fell back to it, ``"realtime"``)."""
        ...

    def extend_leases(
        self, worker_id: str, request_ids: Iterable[int], now: float, lease_seconds: float
    ) -> set[int]: ...
    def mark_generating(self, worker_id: str, request_ids: Iterable[int], now: float) -> None: ...
    def held_request_ids(self, worker_id: str) -> set[int]: ...
    def record_outcomes(
        self, outcomes: Sequence[batch_model.Outcome], now: float
    ) -> list[bool]: ...
    def requeue_lost_leases(self, now: float, policy: retry.RetryPolicy) -> int: ...


class BatchSweeps(Protocol):
    """The writes that end batches (domain/states.py's table). Each writes
    the batch's webhook events in the same transaction (see WebhookOutbox);
    so does BatchStore.fail_batch. Contract: test_sweeps.py,
    test_transitions.py."""

    def expire_batches(self, now: float) -> list[str]: ...
    def finalize_batches(self, now: float, batch_ids: Iterable[str] | None = None) -> list[str]: ...


class WebhookEndpoints(Protocol):
    """A key's webhook endpoints and the log of their deliveries
    (services/webhooks.py). Contract: test_webhook_store.py."""

    def create_webhook_endpoint(
        self, endpoint: wh.Endpoint, secret: str, max_per_owner: int | None = None
    ) -> wh.Endpoint | None: ...
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


class WebhookOutbox(Protocol):
    """The outbox the deliverer works from (worker/webhooks.py): deliveries
    leased for one attempt each, written back fenced on the lease. Contract:
    test_webhook_store.py, test_webhook_attempts.py."""

    def claim_webhook_deliveries(
        self, worker_id: str, n: int, now: float, lease_seconds: float
    ) -> list[wh.ClaimedDelivery]: ...
    def record_webhook_attempt(self, result: wh.AttemptResult, now: float) -> bool: ...
    def add_progress_events(self, now: float | None = None) -> int: ...


class StatsReader(Protocol):
    """Figures over the whole store, read-only: the metrics scrape, the
    dashboard, /ready, dry-run estimates. Contract: test_stats.py,
    test_throughput.py."""

    def model_stats(
        self, now: float, *, window_seconds: float = 300.0, owner: str | None = None
    ) -> list[stats.ModelStats]: ...
    def batch_status_counts(self, owner: str | None = None) -> dict[BatchStatus, int]: ...
    def path_costs(self, since: float) -> list[stats.PathCost]:
        """Requests of provider-batch models (``route`` set) that ended
        succeeded or errored since ``since``, per (model, path), by model
        then path: their count and the ``cost`` billed for them. Reads only
        rows that ended in the window (``ix_requests_finished``)."""
        ...

    def recent_work(self, model: str, since: float) -> estimate.RecentWork: ...
    def schema_revision(self) -> tuple[str | None, str]: ...


class WorkerRegistry(Protocol):
    """Worker heartbeats (each worker writes its own row) and their folding.
    Contract: test_workers.py."""

    def record_worker(self, heartbeat: workers.WorkerHeartbeat) -> None: ...
    def list_workers(self, *, seen_since: float | None = None) -> list[workers.WorkerHeartbeat]: ...
    def retire_workers(self, stopped_before: float) -> int: ...


class RetentionStore(Protocol):
    """Purging expired results and files a bounded step at a time.
    Contract: test_retention.py."""

    def purge_step(self, now: float, max_rows: int) -> int: ...
    def reclaim_space(self) -> None: ...


class UpstreamJobStore(Protocol):
    """Upstream jobs (domain/upstream_jobs.py): a provider-batch model's
    queued rows packed into jobs, each leased to one worker at a time while
    it is driven through the provider. A job's rows are leased to the job
    (``lease_owner = job.id``); their outcomes are written with
    ``QueueStore.record_outcomes`` fenced on it."""

    def pending_upstream_work(self, model: str, now: float) -> uj.PendingWork:
        """The model's queued rows a job may take now (``route`` unset,
        backoff over, batch in progress)."""
        ...

    def assemble_job(
        self, job: uj.UpstreamJob, max_requests: int, now: float
    ) -> list[uj.HeldRequest]:
        """Insert ``job`` (state assembling, leased as given) and claim up to
        ``max_requests`` of its model's pending rows into it, earliest
        deadline first, in one transaction: running, leased to the job,
        ``upstream_job_id`` set, attempt counted. No rows: nothing is stored
        and [] is returned. Sets the job's request_count and deadline."""
        ...

    def job_requests(
        self,
        job_id: str,
        request_ids: Iterable[int] | None = None,
        *,
        with_params: bool = True,
    ) -> list[uj.HeldRequest]:
        """The rows the job still holds (running, leased to it), by id; only
        those among ``request_ids`` if given (a chunk of result lines).
        ``with_params=False`` leaves their params empty (what settling the
        rows left after a job's results needs)."""
        ...

    def job_hold(self, job_id: str) -> uj.Hold:
        """How many rows the job still holds and their earliest deadline,
        counted in the store: a job is polled many times and may hold
        100,000 rows, which a poll need not read."""
        ...

    def dropped_params(self, job_id: str, request_ids: Iterable[int]) -> dict[int, str]:
        """The stored params of rows among ``request_ids`` the job sent
        (``upstream_job_id`` = the job) that left it unserved: cancelled,
        expired, or routed to the real-time path. A result line for one of
        them is read against its request to count what the provider billed
        for it, the operator's loss; a row the job served itself (a download
        repeated after a crash) is not one of them."""
        ...

    def release_job_requests(
        self,
        job_id: str,
        request_ids: Iterable[int],
        now: float,
        *,
        route: uj.Path | None = None,
    ) -> int:
        """Rows the job holds go back to the queue at once, their attempt
        refunded (the job's fate is not theirs): into a later job, or, with
        ``route=REALTIME``, to the model's real-time path. Rows it no longer
        holds are left. Returns how many moved."""
        ...

    def expire_job_requests(self, job_id: str, request_ids: Iterable[int], now: float) -> int:
        """Rows the job holds whose window has no room for another job end
        ``expired``. Returns how many."""
        ...

    def claim_due_jobs(
        self, models: Sequence[str], worker_id: str, now: float, lease_seconds: float, limit: int
    ) -> list[uj.UpstreamJob]:
        """Lease jobs of ``models`` that are not done and are due
        (``next_poll_at <= now``), unleased, expired or already ours: the
        worker that crashed mid-step is replaced once its lease runs out."""
        ...

    def update_job(
        self,
        job_id: str,
        worker_id: str,
        update: uj.JobUpdate,
        now: float,
        lease_seconds: float,
    ) -> uj.UpstreamJob | None:
        """Apply one step's changes, fenced on the job's lease (and on a legal
        state move, domain/upstream_jobs.py ``JOB_TRANSITIONS``), extending the
        lease; None when ``worker_id`` no longer holds the job or the move is
        not legal."""
        ...

    def release_job_lease(self, job_id: str, worker_id: str) -> None:
        """Let another worker take the job at once (a draining worker)."""
        ...

    def get_job(self, job_id: str) -> uj.UpstreamJob | None: ...

    def list_jobs(
        self,
        *,
        model: str | None = None,
        states: Iterable[uj.JobState] | None = None,
        ended_since: float | None = None,
        limit: int = 100,
    ) -> list[uj.UpstreamJob]:
        """Jobs, newest first (the dashboard, the ETA's measured turnaround)."""
        ...

    def jobs_for_batch(self, batch_id: str) -> list[uj.UpstreamJob]:
        """The jobs that hold or served rows of a tenant's batch."""
        ...

    def served_paths(self, batch_id: str) -> dict[uj.Path, int]:
        """How many of a batch's rows each path served (ended succeeded or
        errored with a route); empty for a batch of other models."""
        ...

    def fallback_due(self, model: str, deadline_before: float) -> dict[str, list[int]]:
        """Rows held by the model's open jobs whose batch window ends before
        ``deadline_before``, by job id."""
        ...

    def recorded_upstream_batch_ids(self, kind: str, since: float) -> set[str]:
        """Upstream batch ids already recorded on jobs of ``kind`` created
        since then: a batch found upstream after a crash that is one of
        these belongs to another job."""
        ...

    def start_create(
        self, job_id: str, worker_id: str, now: float, lease_seconds: float
    ) -> uj.UpstreamJob | None:
        """Record that the job's create begins (``create_started_at = now``),
        fenced on its lease like ``update_job``, unless another job of its
        kind has a create unresolved (``uj.create_unresolved``): a batch a
        crash left unrecorded is found again by creation time and size only
        (Anthropic), so with two such creates each job could adopt the
        other's batch, and their rows be sent and billed twice. Atomic
        across workers. None when the job must wait for the other (or is no
        longer ``worker_id``'s)."""
        ...


class JobStore(
    KeyStore,
    FileStore,
    BatchStore,
    QueueStore,
    BatchSweeps,
    WebhookEndpoints,
    WebhookOutbox,
    StatsReader,
    WorkerRegistry,
    RetentionStore,
    UpstreamJobStore,
    Protocol,
):
    """Every role: what composition.py opens and wiring passes on."""

    def close(self) -> None: ...
