"""The upstream-job driver: a provider-batch model's rows through the
provider's own batch API (domain/upstream_jobs.py holds the rules, this
module the I/O; worker/upstream_lines.py renders and reads the lines).

The worker runs one driver per ``openai_batch`` / ``anthropic_batch`` model.
Each tick it

1. flushes: packs the model's queued rows, whichever tenant's batch they
   come from, into a new job when one is due (``uj.flush_at``), at most the
   model's current job size (halved after each refusal as too large);
2. falls back (if the model names a real-time upstream): rows of jobs not
   yet at the provider whose window is running out go to the real-time lane;
3. steps every due job it can lease: assembling -> (find or upload the
   file) -> uploaded -> (find or create the batch) -> submitted -> polled
   with back-off -> ended -> results streamed back, rows still held
   re-queued, handed to the real-time lane or expired -> downloaded.

Every step can be repeated after a crash: before anything is created
upstream the driver looks for it (``find_file``; ``find_batch`` once a create
may have started, which ``create_started_at`` records first; a kind found
by time, Anthropic, has one such create unresolved at a time across the
fleet, ``UpstreamJobStore.start_create``), and every write to a row is
fenced on the job, so results written twice apply once. An
upstream error on a step is recorded on the job (``last_error``) and the
step is tried again after a back-off; nothing here may stop the worker.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Protocol

from batchgate import config
from batchgate.backends import base
from batchgate.backends import provider_batch as pb
from batchgate.domain import batch as batch_model
from batchgate.domain import failures, ids, retry
from batchgate.domain import upstream_jobs as uj
from batchgate.domain.states import RequestState
from batchgate.metrics import worker as worker_metrics
from batchgate.store import port
from batchgate.worker import trace
from batchgate.worker import upstream_lines as lines

log = logging.getLogger("batchgate.upstream")

GROUP = 500  # result lines per outcome write (one transaction)
MAX_STEPS = 8  # jobs of one model stepped at once by this worker
MAX_JOBS_PER_FLUSH = 64  # full jobs assembled in one tick
TURNAROUND_REFRESH_SECONDS = 60.0
ERROR_CHARS = 500
# Deleting a done job's files at the provider: tried this often, then the
# files are left there (logged); the job itself is done either way.
DELETE_ATTEMPTS = 3


class DriverStore(port.QueueStore, port.BatchSweeps, port.UpstreamJobStore, Protocol):
    """The roles a driver uses: its jobs, the outcome writes fenced on them,
    and finalizing the batches those writes end."""


Handler = Callable[[uj.UpstreamJob], Awaitable[uj.UpstreamJob | None]]


class UpstreamJobDriver:
    """Drives the upstream jobs of one provider-batch model on this worker."""

    def __init__(
        self,
        store: DriverStore,
        backend: pb.ProviderBatchBackend,
        model: config.ModelConfig,
        *,
        options: config.WorkerSettings,
        policy: retry.RetryPolicy,
        metrics: worker_metrics.Recorder,
        worker_id: str,
    ) -> None:
        self.store = store
        self.backend = backend
        self.client = backend.client
        self.limits = backend.limits
        self.model = model
        self.options = options
        self.policy = policy
        self.metrics = metrics
        self.worker_id = worker_id
        # The job size after refusals as too large (kept for this process).
        self.size = backend.limits.max_requests
        self.refusals = 0  # in a row; the flush backs off by them
        self.flush_not_before = 0.0
        self._turnaround = (0.0, float("-inf"))  # (seconds, when read)
        self.steps: dict[str, asyncio.Task[None]] = {}
        self.leased: set[str] = set()  # jobs this worker claimed (released on drain)
        # Jobs assembled here whose file was never sent: nothing to look for.
        self.fresh: set[str] = set()
        self.failures: collections.Counter[str] = collections.Counter()
        # Result lines of a job already written by this process (a download
        # repeated after an error skips them, and counts no cost twice).
        self.seen: dict[str, set[int]] = {}
        # One create in flight per model in this process (the store's
        # start_create keeps Anthropic's to one unresolved per kind across
        # processes and crashes).
        self.create_lock = asyncio.Lock()
        # Deletes of done jobs' files at the provider, in flight.
        self.deletes: set[asyncio.Task[None]] = set()

    @property
    def tick_seconds(self) -> float:
        """Often enough to notice an ended job within its poll interval,
        never more often than the worker polls for work."""
        options = self.options
        return max(options.poll_seconds, min(self.limits.poll_seconds, options.sweep_seconds))

    # -- the loop ---------------------------------------------------------------
    async def run(self, draining: asyncio.Event) -> None:
        """Tick until ``draining``; then let the steps in flight finish (up to
        the drain grace period) and hand the jobs' leases back."""
        while not draining.is_set():
            await self.tick()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(draining.wait(), self.tick_seconds)
        await self._stop()

    async def tick(self) -> None:
        parts = (("flush", self._flush), ("fallback", self._fall_back), ("step", self._step_due))
        for name, part in parts:
            try:
                await part()
            except Exception:  # the store is down, a bug: next tick tries again
                log.exception("upstream jobs of %s: %s failed", self.model.name, name)

    async def _stop(self) -> None:
        deadline = time.monotonic() + self.options.drain_seconds
        await _finish(list(self.steps.values()), deadline)
        # A step that finished its job just now started its files' delete.
        await _finish(list(self.deletes), deadline)
        for job_id in sorted(self.leased):
            try:
                await asyncio.to_thread(self.store.release_job_lease, job_id, self.worker_id)
            except Exception:  # its lease runs out instead
                log.exception("could not release upstream job %s", job_id)
        self.leased.clear()

    # -- flush ------------------------------------------------------------------
    async def _flush(self) -> None:
        now = time.time()
        if now < self.flush_not_before:
            return
        limits = dataclasses.replace(self.limits, max_requests=self.size)
        turnaround = await self.turnaround(now)
        for _ in range(MAX_JOBS_PER_FLUSH):
            pending = await asyncio.to_thread(
                self.store.pending_upstream_work, self.model.name, now
            )
            due = uj.flush_at(pending, limits, turnaround)
            if due is None or due > now or not await self._assemble(now):
                return

    async def _assemble(self, now: float) -> bool:
        job = uj.UpstreamJob(
            id=ids.new_upstream_job_id(),
            model=self.model.name,
            kind=self.backend.kind,
            endpoint=self.backend.endpoint,
            state=uj.JobState.ASSEMBLING,
            created_at=now,
            lease_owner=self.worker_id,
            lease_expires_at=now + self.options.lease_seconds,
        )
        held = await asyncio.to_thread(self.store.assemble_job, job, self.size, now)
        if not held:
            return False
        self.fresh.add(job.id)
        self.leased.add(job.id)
        log.info(
            "upstream job %s assembled: %d requests of %s",
            job.id,
            len(held),
            self.model.name,
            extra={"event": "upstream_job_assembled", "job_id": job.id, "requests": len(held)},
        )
        return True

    async def turnaround(self, now: float) -> float:
        """The median time the provider took over the model's recent jobs
        (0 while none has completed), read at most once a minute."""
        value, read_at = self._turnaround
        if now - read_at < TURNAROUND_REFRESH_SECONDS:
            return value
        recent = await asyncio.to_thread(
            self.store.list_jobs,
            model=self.model.name,
            states=[uj.JobState.ENDED],
            limit=uj.TURNAROUND_JOBS,
        )
        value, _ = uj.measured_turnaround(recent)
        self._turnaround = (value, now)
        return value

    # -- fallback ---------------------------------------------------------------
    async def _fall_back(self) -> None:
        """Rows of jobs not yet at the provider whose window is running out
        go to the real-time lane. A submitted job's own step moves its rows,
        because it must cancel its batch as well."""
        if self.backend.realtime is None:
            return
        now = time.time()
        due = await asyncio.to_thread(
            self.store.fallback_due, self.model.name, now + self.limits.sync_fallback_before
        )
        for job_id, request_ids in due.items():
            job = await asyncio.to_thread(self.store.get_job, job_id)
            if job is None or job.state is uj.JobState.SUBMITTED:
                continue
            await self._release(job_id, request_ids, now, route=uj.Path.REALTIME)

    async def _release(
        self, job_id: str, request_ids: Sequence[int], now: float, *, route: uj.Path | None = None
    ) -> int:
        if not request_ids:
            return 0
        moved = await asyncio.to_thread(
            self.store.release_job_requests, job_id, request_ids, now, route=route
        )
        if moved and route is uj.Path.REALTIME:
            log.info(
                "%d requests of upstream job %s fall back to the real-time upstream",
                moved,
                job_id,
                extra={"event": "upstream_fallback", "job_id": job_id, "requests": moved},
            )
        return moved

    # -- stepping jobs ----------------------------------------------------------
    async def _step_due(self) -> None:
        room = MAX_STEPS - len(self.steps)
        if room <= 0:
            return
        jobs = await asyncio.to_thread(
            self.store.claim_due_jobs,
            [self.model.name],
            self.worker_id,
            time.time(),
            self.options.lease_seconds,
            room + len(self.steps),
        )
        for job in jobs:
            self.leased.add(job.id)
            if job.id not in self.steps:
                self.steps[job.id] = asyncio.create_task(self.step(job), name=f"ujob:{job.id}")

    async def step(self, job: uj.UpstreamJob) -> None:
        """Take ``job`` as far as it can go now, its lease kept alive."""
        keeper = asyncio.create_task(self._keep_lease(job.id, asyncio.current_task()))
        try:
            await self._advance(job)
            self.failures.pop(job.id, None)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self._step_failed(job, exc)
        finally:
            keeper.cancel()
            self.steps.pop(job.id, None)

    async def _advance(self, job: uj.UpstreamJob) -> None:
        handlers: dict[uj.JobState, Handler] = {
            uj.JobState.ASSEMBLING: self._assembling,
            uj.JobState.UPLOADED: self._uploaded,
            uj.JobState.SUBMITTED: self._poll,
            uj.JobState.ENDED: self._download,
        }
        current: uj.UpstreamJob | None = job
        while current is not None and not current.done:
            current = await handlers[current.state](current)
        if current is not None:
            self._done(current)

    def _done(self, job: uj.UpstreamJob) -> None:
        """A job is done: forget it, and delete its files at the provider."""
        self._forget(job.id)
        task = asyncio.create_task(self._delete_upstream(job), name=f"ujob-delete:{job.id}")
        self.deletes.add(task)
        task.add_done_callback(self.deletes.discard)

    async def _delete_upstream(self, job: uj.UpstreamJob) -> None:
        """Its results are in the store: what the provider keeps for it goes
        (``BatchClient.delete_upstream``), tried a few times with back-off,
        then logged and left, never tried forever."""
        for attempt in range(1, DELETE_ATTEMPTS + 1):
            try:
                await self.client.delete_upstream(job)
                return
            except Exception as exc:
                retryable = isinstance(exc, base.BackendError) and exc.retryable
                if not retryable or attempt == DELETE_ATTEMPTS:
                    log.warning(
                        "upstream job %s: its files at the provider were not deleted (%s); "
                        "they stay there",
                        job.id,
                        _why(exc),
                        extra={"event": "upstream_delete_failed", "job_id": job.id},
                    )
                    return
            await asyncio.sleep(min(self.policy.backoff(attempt), self.limits.poll_max_seconds))

    def _forget(self, job_id: str) -> None:
        self.leased.discard(job_id)
        self.fresh.discard(job_id)
        self.seen.pop(job_id, None)
        self.failures.pop(job_id, None)

    async def _keep_lease(self, job_id: str, step: asyncio.Task[None] | None) -> None:
        """Extend the job's lease while a long step (an upload, a download)
        runs; stop the step if another worker has the job now."""
        while True:
            await asyncio.sleep(self.options.lease_seconds / 3)
            try:
                kept = await asyncio.to_thread(
                    self.store.update_job,
                    job_id,
                    self.worker_id,
                    uj.JobUpdate(),
                    time.time(),
                    self.options.lease_seconds,
                )
            except Exception:
                log.exception("could not extend the lease of upstream job %s", job_id)
                continue
            if kept is None and step is not None:
                log.warning("upstream job %s: lease lost mid-step; stopping it", job_id)
                step.cancel()
                return

    async def _update(self, job: uj.UpstreamJob, update: uj.JobUpdate) -> uj.UpstreamJob | None:
        """One fenced change to the job; None (the step stops) when another
        worker has it now."""
        updated = await asyncio.to_thread(
            self.store.update_job,
            job.id,
            self.worker_id,
            update,
            time.time(),
            self.options.lease_seconds,
        )
        if updated is None:
            log.warning("upstream job %s is no longer this worker's; step stopped", job.id)
            self.leased.discard(job.id)
        return updated

    async def _held_rows(self, job_id: str) -> list[uj.HeldRequest]:
        """The rows a job holds, without their params (ids, batches,
        deadlines: what settling them needs)."""
        return await asyncio.to_thread(
            functools.partial(self.store.job_requests, job_id, with_params=False)
        )

    async def _held(
        self, job: uj.UpstreamJob, *, with_params: bool = False
    ) -> tuple[list[uj.HeldRequest], int]:
        """The rows the job holds, after those whose window is running out
        left it for the real-time lane (how many did: the second value)."""
        held = await asyncio.to_thread(
            functools.partial(self.store.job_requests, job.id, with_params=with_params)
        )
        if self.backend.realtime is None:
            return held, 0
        now = time.time()
        due = {row.id for row in held if uj.needs_fallback(row.deadline, now, self.limits)}
        if not due:
            return held, 0
        moved = await self._release(job.id, sorted(due), now, route=uj.Path.REALTIME)
        return [row for row in held if row.id not in due], moved

    async def _hold(self, job: uj.UpstreamJob) -> tuple[uj.Hold, int]:
        """What :meth:`_held` tells a poll, counted by the store: the rows
        are read only when some must leave for the real-time lane. A job is
        polled many times and may hold 100,000 rows; reading them all on
        every poll cost more than writing its results back."""
        hold = await asyncio.to_thread(self.store.job_hold, job.id)
        earliest = hold.earliest_deadline
        if (
            self.backend.realtime is None
            or earliest is None
            or not uj.needs_fallback(earliest, time.time(), self.limits)
        ):
            return hold, 0
        held, moved = await self._held(job)
        return uj.Hold(len(held), min((row.deadline for row in held), default=None)), moved

    # -- assembling and uploaded --------------------------------------------------
    async def _assembling(self, job: uj.UpstreamJob) -> uj.UpstreamJob | None:
        held, _ = await self._held(job, with_params=True)
        if not held:
            return await self._end_unsent(job)
        if not self.client.uploads_file:
            return await self._send_requests(job, held)
        if job.id not in self.fresh:
            file_id = await self.client.find_file(job)
            if file_id is not None:
                return await self._update(
                    job, uj.JobUpdate(state=uj.JobState.UPLOADED, upstream_file_id=file_id)
                )
        encoded = await self._encode(job, held)
        if not encoded.lines:
            return await self._end_unsent(job)
        counted = await self._update(
            job, uj.JobUpdate(request_count=len(encoded.lines), bytes=encoded.bytes)
        )
        if counted is None:
            return None
        # From here on a file may exist upstream: a repeat looks for it.
        self.fresh.discard(job.id)
        file_id = await self.client.upload(counted, encoded.lines)
        return await self._update(
            counted, uj.JobUpdate(state=uj.JobState.UPLOADED, upstream_file_id=file_id)
        )

    async def _uploaded(self, job: uj.UpstreamJob) -> uj.UpstreamJob | None:
        hold, _ = await self._hold(job)
        if not hold.count:
            return await self._end_unsent(job)
        async with self.create_lock:
            found = await self._find_batch(job)
            if found is not None:
                return await self._submitted(job, found)
            return await self._create(job, [])

    async def _send_requests(
        self, job: uj.UpstreamJob, held: list[uj.HeldRequest]
    ) -> uj.UpstreamJob | None:
        """A kind without files (Anthropic): the requests go in the create."""
        async with self.create_lock:
            # Looked for with the count recorded before the create began.
            found = await self._find_batch(job)
            if found is not None:
                return await self._submitted(job, found)
            encoded = await self._encode(job, held)
            if not encoded.lines:  # looked for above: no batch exists
                return await self._end(job, uj.EndStatus.CANCELLED, None)
            counted = await self._update(
                job, uj.JobUpdate(request_count=len(encoded.lines), bytes=encoded.bytes)
            )
            if counted is None:
                return None
            return await self._create(counted, encoded.lines)

    async def _encode(self, job: uj.UpstreamJob, held: list[uj.HeldRequest]) -> lines.Encoded:
        """The job's lines; rows the upstream cannot carry end errored, rows
        past the byte limit go back to the queue."""
        encoded = await asyncio.to_thread(lines.encode, self.backend, held)
        if encoded.refused:
            outcomes = [
                lines.ended(row, job.id, RequestState.ERRORED, error)
                for row, error in encoded.refused
            ]
            await self.record(outcomes, {row.batch_id for row, _ in encoded.refused})
        overflow = [row.id for row in encoded.overflow]
        await self._release(job.id, overflow, time.time())
        return encoded

    async def _find_batch(self, job: uj.UpstreamJob) -> pb.UpstreamBatch | None:
        """The provider's batch for ``job`` if a create may have begun."""
        if job.create_started_at is None:
            return None
        recorded = await asyncio.to_thread(
            self.store.recorded_upstream_batch_ids,
            job.kind,
            job.create_started_at - uj.RECORDED_LOOKBACK_SECONDS,
        )
        if job.upstream_batch_id is not None:
            recorded.discard(job.upstream_batch_id)
        found = await self.client.find_batch(job, recorded)
        if found is not None:
            log.info(
                "upstream job %s: adopted batch %s found upstream",
                job.id,
                found.id,
                extra={"event": "upstream_job_adopted", "job_id": job.id, "batch": found.id},
            )
        return found

    async def _create(
        self, job: uj.UpstreamJob, requests: Sequence[bytes]
    ) -> uj.UpstreamJob | None:
        """Create the batch (the create lock held). ``create_started_at`` is
        recorded first: a crash after this point looks before creating."""
        started = await self._start_create(job)
        if started is None:
            return None
        try:
            batch = await self.client.create(started, requests)
        except pb.JobTooLarge as exc:
            return await self._refused(started, exc.reason)
        self.refusals = 0
        return await self._submitted(started, batch)

    async def _start_create(self, job: uj.UpstreamJob) -> uj.UpstreamJob | None:
        """Record that the create begins. A kind whose lost batches are
        found by time (Anthropic) waits while another job's create is
        unresolved (a crashed worker's, until its lease runs out and the
        job is found or made): two such batches could each be taken for the
        other's, and their rows sent and billed twice."""
        now = time.time()
        if not self.client.matches_by_time:
            return await self._update(job, uj.JobUpdate(create_started_at=now))
        started = await asyncio.to_thread(
            self.store.start_create, job.id, self.worker_id, now, self.options.lease_seconds
        )
        if started is None:
            log.info(
                "upstream job %s waits: another job's create is not resolved yet",
                job.id,
                extra={"event": "upstream_create_waits", "job_id": job.id},
            )
            await self._update(job, uj.JobUpdate(next_poll_at=now + self.limits.poll_seconds))
        return started

    async def _submitted(
        self, job: uj.UpstreamJob, batch: pb.UpstreamBatch
    ) -> uj.UpstreamJob | None:
        now = time.time()
        await self._update(
            job,
            uj.JobUpdate(
                state=uj.JobState.SUBMITTED,
                upstream_batch_id=batch.id,
                submitted_at=now,
                upstream_status=batch.status,
                polls=0,
                next_poll_at=now + uj.next_poll_delay(0, self.limits),
            ),
        )
        log.info(
            "upstream job %s submitted as batch %s",
            job.id,
            batch.id,
            extra={"event": "upstream_job_submitted", "job_id": job.id, "batch": batch.id},
        )
        return None  # polled when due

    async def _end_unsent(self, job: uj.UpstreamJob) -> uj.UpstreamJob | None:
        """A job not at the provider that holds no rows (all cancelled, fell
        back or refused) ends cancelled, unless a create may have made its
        batch after all: then that batch is adopted, and cancelled."""
        async with self.create_lock:
            found = await self._find_batch(job)
            if found is not None:
                return await self._submitted(job, found)
        return await self._end(job, uj.EndStatus.CANCELLED, None)

    async def _end(
        self, job: uj.UpstreamJob, status: uj.EndStatus, why: str | None
    ) -> uj.UpstreamJob | None:
        """End a job that has nothing (more) to download."""
        now = time.time()
        ended = await self._update(
            job,
            uj.JobUpdate(
                state=None if job.state is uj.JobState.ENDED else uj.JobState.ENDED,
                end_status=None if job.state is uj.JobState.ENDED else status,
                ended_at=None if job.state is uj.JobState.ENDED else now,
                downloaded_at=now,
                last_error=why,
            ),
        )
        if ended is not None and job.state is not uj.JobState.ENDED:
            self.metrics.job_ended(self.model.name, status.value, None)
        return ended

    async def _refused(self, job: uj.UpstreamJob, reason: str) -> uj.UpstreamJob | None:
        """The provider refused the job as too large: its rows go back to
        the queue, and the model's jobs are half this size from now on."""
        held = await self._held_rows(job.id)
        now = time.time()
        if len(held) == 1 and job.request_count <= 1:
            # Alone and still too large: no smaller job can carry it.
            refusal = lines.refused_too_large(reason)
            await self.record(
                [lines.ended(held[0], job.id, RequestState.ERRORED, refusal)], {held[0].batch_id}
            )
        else:
            await self._release(job.id, [row.id for row in held], now)
        self.size = min(self.size, uj.smaller_job(max(job.request_count, len(held), 1)))
        self.refusals += 1
        self.flush_not_before = now + self.policy.backoff(self.refusals)
        self.metrics.job_refused(self.model.name, reason)
        log.warning(
            "upstream job %s of %d requests refused as too large (%s); jobs of %s now hold "
            "at most %d",
            job.id,
            job.request_count,
            reason,
            self.model.name,
            self.size,
            extra={"event": "upstream_job_refused", "job_id": job.id, "reason": reason},
        )
        why = f"refused by the upstream as too large ({reason}); its requests were re-queued"
        return await self._end(job, uj.EndStatus.FAILED, why)

    # -- submitted --------------------------------------------------------------
    async def _poll(self, job: uj.UpstreamJob) -> uj.UpstreamJob | None:
        """Ask the provider how the batch does. A batch none of whose rows
        the job still holds (cancelled), or some of whose rows just fell back
        to the real-time upstream, is cancelled there first (once)."""
        batch_id = job.upstream_batch_id
        assert batch_id is not None
        hold, fell_back = await self._hold(job)
        if (fell_back or not hold.count) and job.cancel_requested_at is None:
            batch = await self._cancel(batch_id)
            log.info(
                "upstream job %s: batch %s cancelled upstream (%s)",
                job.id,
                batch_id,
                "rows fell back" if fell_back else "no rows left",
                extra={"event": "upstream_job_cancelled", "job_id": job.id},
            )
            # Polled afresh: a cancelled batch ends soon.
            cancelled = await self._update(
                job, uj.JobUpdate(cancel_requested_at=time.time(), polls=0)
            )
            if cancelled is None:
                return None
            job = cancelled
        else:
            batch = await self.client.get(batch_id)
        if batch.end_status is None:
            polls = job.polls + 1
            next_poll = self._next_poll(hold, polls, time.time())
            await self._update(
                job,
                uj.JobUpdate(upstream_status=batch.status, polls=polls, next_poll_at=next_poll),
            )
            return None
        return await self._ended(job, batch)

    async def _cancel(self, batch_id: str) -> pb.UpstreamBatch:
        """Cancel the batch upstream; one the provider will not cancel for
        good (it has just ended) is read as it is instead."""
        try:
            return await self.client.cancel(batch_id)
        except base.BackendError as exc:
            if exc.retryable:
                raise
            log.info("batch %s was not cancelled (%s); reading it instead", batch_id, exc)
            return await self.client.get(batch_id)

    def _next_poll(self, hold: uj.Hold, polls: int, now: float) -> float:
        """With back-off, but no later than the moment the first held row
        must fall back to the real-time upstream."""
        due = now + uj.next_poll_delay(polls, self.limits)
        if self.backend.realtime is not None and hold.earliest_deadline is not None:
            first = hold.earliest_deadline - self.limits.sync_fallback_before
            due = min(due, max(first, now))
        return due

    async def _ended(self, job: uj.UpstreamJob, batch: pb.UpstreamBatch) -> uj.UpstreamJob | None:
        if batch.refusal is not None:
            return await self._refused(job, batch.refusal)
        assert batch.end_status is not None
        now = time.time()
        ended = await self._update(
            job,
            uj.JobUpdate(
                state=uj.JobState.ENDED,
                end_status=batch.end_status,
                ended_at=now,
                upstream_status=batch.status,
                output_file_id=batch.output_file_id,
                error_file_id=batch.error_file_id,
                last_error=None if batch.error is None else batch.error[:ERROR_CHARS],
            ),
        )
        if ended is not None:
            turnaround = None if job.submitted_at is None else now - job.submitted_at
            self.metrics.job_ended(self.model.name, batch.end_status.value, turnaround)
            self._turnaround = (self._turnaround[0], float("-inf"))  # read it again
        return ended

    # -- ended: results ---------------------------------------------------------
    async def _download(self, job: uj.UpstreamJob) -> uj.UpstreamJob | None:
        """Stream the results into the rows the job holds, a group at a time
        (a job's results are never all in memory), then settle the rows no
        line answered."""
        if job.upstream_batch_id is None:
            return await self._end(job, uj.EndStatus.CANCELLED, None)
        seen = self.seen.setdefault(job.id, set())
        group: dict[int, pb.ResultLine] = {}
        async for line in self.client.results(_batch_of(job)):
            if line.request_id in seen or line.request_id in group:
                continue  # a line the upstream repeated, or one written before
            group[line.request_id] = line
            if len(group) >= GROUP:
                await self._write(job, group)
                group = {}
        if group:
            await self._write(job, group)
        await self._settle(job, _failure(job))
        done = await self._update(job, uj.JobUpdate(downloaded_at=time.time()))
        if done is not None:
            log.info(
                "upstream job %s done (%s)",
                job.id,
                job.end_status,
                extra={"event": "upstream_job_done", "job_id": job.id},
            )
        return done

    async def _write(self, job: uj.UpstreamJob, lines_by_id: dict[int, pb.ResultLine]) -> None:
        """One group of result lines into their rows, fenced on the job. A
        line whose row the job no longer holds (cancelled, fell back) was
        paid for all the same: the operator's loss."""
        held = await asyncio.to_thread(self.store.job_requests, job.id, list(lines_by_id))
        gone = set(lines_by_id) - {row.id for row in held}
        gone_params = (
            await asyncio.to_thread(self.store.dropped_params, job.id, sorted(gone)) if gone else {}
        )
        group = await asyncio.to_thread(
            lines.read_group,
            job.id,
            self.backend,
            self.model,
            self.policy,
            lines_by_id,
            held,
            gone_params,
            time.time(),
        )
        applied = await self.record(group.outcomes, group.batch_ids)
        dropped = group.dropped
        dropped += sum(o.cost for o, ok in zip(group.outcomes, applied, strict=True) if not ok)
        self.seen.setdefault(job.id, set()).update(lines_by_id)
        self.metrics.upstream_cost(self.model.name, uj.Path.BATCH.value, group.paid)
        if dropped:
            self.metrics.dropped_cost(self.model.name, dropped)

    async def record(self, outcomes: list[batch_model.Outcome], batch_ids: set[str]) -> list[bool]:
        """Write outcomes (one transaction), count them, and finalize the
        batches they may have ended so their results read at once."""
        if not outcomes:
            return []
        now = time.time()
        applied = await asyncio.to_thread(self.store.record_outcomes, outcomes, now)
        for outcome, ok in zip(outcomes, applied, strict=True):
            self.metrics.record(self.model.name, outcome, ok)
        try:
            ended = await asyncio.to_thread(self.store.finalize_batches, now, batch_ids)
            trace.batches_ended(ended, "ended")
        except Exception:  # the sweep finalizes them later
            log.exception("finalize after upstream results failed")
        return applied

    async def _settle(
        self, job: uj.UpstreamJob, failed: failures.RequestError | None = None
    ) -> None:
        """Rows no result line answered (a failed, expired or cancelled
        batch; lines missing): back to the queue while their window has
        room for another job, else to the real-time lane while it has any
        room at all, else expired. The job's fate is not theirs, so their
        attempt is refunded, unless the provider ``failed`` the batch: that
        may be for its input (one line it refused fails a whole OpenAI
        batch), so it counts as an attempt, and the retry policy ends it."""
        now = time.time()
        held = await self._held_rows(job.id)
        realtime = self.backend.realtime is not None
        room = self.limits.sync_fallback_before if realtime else 0.0
        again = [row for row in held if row.deadline - now > room]
        late = [row for row in held if row.deadline - now <= room]
        fall_back = [row.id for row in late if realtime and row.deadline > now]
        expire = [row for row in late if not (realtime and row.deadline > now)]
        if failed is None:
            await self._release(job.id, [row.id for row in again], now)
        else:
            result = functools.partial(pb.LineResult, error=failed, retryable=True)
            outcomes = [
                lines.outcome(result(row.id), row, job.id, self.model, self.policy, now)
                for row in again
            ]
            await self.record(outcomes, {row.batch_id for row in again})
        await self._release(job.id, fall_back, now, route=uj.Path.REALTIME)
        if expire:
            await asyncio.to_thread(
                self.store.expire_job_requests, job.id, [row.id for row in expire], now
            )
            ended = await asyncio.to_thread(
                self.store.finalize_batches, now, {row.batch_id for row in expire}
            )
            trace.batches_ended(ended, "ended")

    # -- failures ---------------------------------------------------------------
    async def _step_failed(self, job: uj.UpstreamJob, exc: Exception) -> None:
        """An upstream (or store) error on a step: recorded on the job and
        tried again after a back-off. A final upstream answer repeated
        ``max_attempts`` times gives the job up."""
        self.failures[job.id] += 1
        failures = self.failures[job.id]
        final = isinstance(exc, base.BackendError) and not exc.retryable
        if not isinstance(exc, base.BackendError):
            log.exception("upstream job %s: step failed", job.id, exc_info=exc)
        else:
            log.warning("upstream job %s: step failed (%s), retrying later", job.id, exc)
        attempts = self.policy.max_attempts
        try:
            if final and attempts is not None and failures >= attempts:
                await self._give_up(job.id, exc)
                return
            retry_after = exc.retry_after if isinstance(exc, base.BackendError) else None
            delay = max(
                min(self.policy.backoff(failures), self.limits.poll_max_seconds),
                self.limits.poll_seconds,
                retry_after or 0.0,
            )
            update = uj.JobUpdate(last_error=_why(exc), next_poll_at=time.time() + delay)
            await self._update(job, update)
        except Exception:  # the store is down too: the lease runs out
            log.exception("upstream job %s: could not record its failure", job.id)

    async def _give_up(self, job_id: str, exc: Exception) -> None:
        """A job the upstream keeps refusing for good: rows not yet sent end
        errored with the upstream's answer; rows of a batch that exists are
        settled (re-queued, fallen back or expired); the job ends failed."""
        job = await asyncio.to_thread(self.store.get_job, job_id)
        if job is None:
            return
        if job.state in (uj.JobState.ASSEMBLING, uj.JobState.UPLOADED) and isinstance(
            exc, base.BackendError
        ):
            held = await self._held_rows(job.id)
            error = exc.request_error()
            await self.record(
                [lines.ended(row, job.id, RequestState.ERRORED, error) for row in held],
                {row.batch_id for row in held},
            )
        else:
            error = failures.RequestError(failures.ErrorType.API, f"upstream job: {_why(exc)}")
            await self._settle(job, error)
        ended = await self._end(job, uj.EndStatus.FAILED, f"given up: {_why(exc)}")
        if ended is None:
            self._forget(job.id)
        else:
            self._done(ended)


async def _finish(tasks: list[asyncio.Task[None]], deadline: float) -> None:
    """Let ``tasks`` finish until ``deadline`` (monotonic); cancel the rest."""
    if not tasks:
        return
    _, late = await asyncio.wait(tasks, timeout=max(deadline - time.monotonic(), 0.0))
    for task in late:
        task.cancel()
    await asyncio.gather(*late, return_exceptions=True)


def _failure(job: uj.UpstreamJob) -> failures.RequestError | None:
    """What the rows of a batch the provider failed were told."""
    if job.end_status is not uj.EndStatus.FAILED:
        return None
    why = job.last_error or "no reason given"
    return failures.RequestError(failures.ErrorType.API, f"the upstream batch failed: {why}")


def _why(exc: Exception) -> str:
    return (str(exc) or type(exc).__name__)[:ERROR_CHARS]


def _batch_of(job: uj.UpstreamJob) -> pb.UpstreamBatch:
    """The ended batch as the job recorded it (what ``results`` reads)."""
    assert job.upstream_batch_id is not None
    return pb.UpstreamBatch(
        id=job.upstream_batch_id,
        status=job.upstream_status or "ended",
        end_status=job.end_status,
        created_at=job.submitted_at or job.created_at,
        output_file_id=job.output_file_id,
        error_file_id=job.error_file_id,
        request_total=job.request_count,
        job_id=job.id,
    )


def count_realtime(
    metrics: worker_metrics.Recorder, model: str, outcome: batch_model.Outcome, applied: bool
) -> None:
    """What a request served by the real-time lane of a provider-batch model
    cost the operator: the list price, twice the batch price the tenant is
    billed (``outcome.cost``); the whole of it a loss if the write was fenced
    off."""
    if outcome.state is not RequestState.SUCCEEDED:
        return
    usd = outcome.cost / config.BATCH_DISCOUNT
    metrics.upstream_cost(model, uj.Path.REALTIME.value, usd)
    if not applied:
        metrics.dropped_cost(model, usd)


def split_backends(
    backends: Iterable[tuple[str, base.Backend]],
) -> tuple[dict[str, base.Backend], dict[str, pb.ProviderBatchBackend]]:
    """The backends a worker serves one call per request (lanes), and the
    provider-batch ones it drives jobs for."""
    plain: dict[str, base.Backend] = {}
    batch: dict[str, pb.ProviderBatchBackend] = {}
    for name, backend in backends:
        if isinstance(backend, pb.ProviderBatchBackend):
            batch[name] = backend
        else:
            plain[name] = backend
    return plain, batch
