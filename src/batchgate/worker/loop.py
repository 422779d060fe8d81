"""The worker: claim -> run on the model's backend -> record, with leases.

One lane per configured model keeps at most ``max_concurrency`` requests of
that model in flight. Claimed requests are leased to this worker; a heartbeat
extends the leases, and a request that vanished from our leases (cancelled,
expired, reclaimed after we stalled) has its task cancelled so its slot frees
at once. All writes are fenced on the lease, so a worker that lost a request
can never overwrite what happened to it since.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
import socket
import time
from collections.abc import Mapping
from typing import Any, Protocol

from batchgate import canonical, config
from batchgate.backends import base, capability, tokens
from batchgate.canonical import embeddings
from batchgate.domain import batch as batch_model
from batchgate.domain import failures, ids, retry
from batchgate.domain import upstream_jobs as uj
from batchgate.domain.batch import ClaimedRequest
from batchgate.domain.states import RequestState
from batchgate.domain.workers import WorkerHeartbeat
from batchgate.metrics import worker as worker_metrics
from batchgate.store import port
from batchgate.worker import generating, pacing, trace, upstream_jobs
from batchgate.worker.retention import RetentionSweep
from batchgate.worker.writer import OutcomeWriter

log = logging.getLogger("batchgate.worker")


class Lane:
    """The requests of one model on this worker, and its pacing.

    A lane holds up to twice the model's concurrency cap in claimed requests,
    so the next request is already leased when an upstream call ends: claiming
    is off the critical path and done in batches. Only ``calls`` (upstream
    calls in progress) is held to the cap and the throttle.

    ``route``: the lane claims only rows routed there (``"realtime"``: the
    deadline fallback of a provider-batch model) and records it on them.
    """

    def __init__(
        self, model: config.ModelConfig, backend: base.Backend, route: str | None = None
    ) -> None:
        self.model = model
        self.backend = backend
        self.route = route
        # What the one capability check holds its requests to; embeddings
        # only if the backend has the method for them.
        self.capabilities = capability.declared(backend)
        self.embedder = backend if isinstance(backend, base.EmbeddingBackend) else None
        # request id -> (task, monotonic time it was claimed)
        self.inflight: dict[int, tuple[asyncio.Task[None], float]] = {}
        self.calls = 0
        self.call_freed = asyncio.Event()
        self.room_freed = asyncio.Event()
        self.buffer_limit = 2 * model.max_concurrency
        self.claim_batch = max(1, model.max_concurrency // 4)
        self.throttle = pacing.ModelThrottle(model.max_concurrency)
        scale = model.rate_period_seconds / 60.0
        self.limiter = pacing.SlidingWindowLimiter(
            max_requests=_scaled(model.requests_per_minute, scale),
            max_tokens=_scaled(model.tokens_per_minute, scale),
            period=model.rate_period_seconds,
        )

    @property
    def room(self) -> int:
        return self.buffer_limit - len(self.inflight)

    async def acquire_call(self, draining: asyncio.Event) -> bool:
        """Wait for a call slot (cap, overload pause, breaker); False when the
        worker started draining first: the request must not start."""
        while not draining.is_set():
            now = time.monotonic()
            if self.throttle.capacity(self.calls, now) > 0:
                self.calls += 1
                return True
            self.call_freed.clear()
            pause = max(self.throttle.paused_until - now, 0.05)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.call_freed.wait(), pause)
        return False

    def release_call(self) -> None:
        self.calls -= 1
        self.call_freed.set()


def _scaled(per_minute: int | None, scale: float) -> int | None:
    return None if per_minute is None else max(1, int(per_minute * scale))


async def _dispatch(lane: Lane, request: canonical.Request) -> canonical.Response:
    """Hand a request that passed the capability check to the backend
    method for its kind."""
    if isinstance(request, embeddings.EmbeddingRequest):
        # The check refused it unless the lane's capabilities serve
        # embeddings, which they do only with an embedder.
        assert lane.embedder is not None
        return await lane.embedder.embed(request)
    return await lane.backend.complete(request)


class WorkerStore(
    port.QueueStore,
    port.BatchSweeps,
    port.WorkerRegistry,
    port.RetentionStore,
    port.UpstreamJobStore,
    Protocol,
):
    """The roles a worker uses: the queue, the sweeps that end batches, its
    heartbeat row, the retention sweep it runs, and the upstream jobs of
    provider-batch models."""


class Worker:
    """Runs the requests of the models in ``backends`` (each configured in
    ``models``), paced by ``options`` (``[worker]``); ``retention`` drives
    its purge sweep; ``metrics``: whether it counts what it does."""

    def __init__(
        self,
        store: WorkerStore,
        backends: Mapping[str, base.Backend],
        *,
        models: Mapping[str, config.ModelConfig],
        options: config.WorkerSettings,
        retention: config.RetentionSettings,
        metrics: bool = True,
        worker_id: str | None = None,
    ) -> None:
        self.store = store
        self.options = options
        self.worker_id = worker_id or ids.new_worker_id()
        self.policy = retry.RetryPolicy(
            max_attempts=options.max_attempts,
            base_seconds=options.backoff_base_seconds,
            max_seconds=options.backoff_max_seconds,
        )
        self.writer = OutcomeWriter(store)
        self.generating = generating.GeneratingMarks(store, self.worker_id)
        self.metrics = worker_metrics.recorder(enabled=metrics)
        self.lanes, self.drivers = self._lanes_and_drivers(backends, models)
        self.started_at = time.time()
        self.retention = RetentionSweep(store, retention)
        self._wake = asyncio.Event()
        self._draining = asyncio.Event()

    def _lanes_and_drivers(
        self, backends: Mapping[str, base.Backend], models: Mapping[str, config.ModelConfig]
    ) -> tuple[dict[str, Lane], dict[str, upstream_jobs.UpstreamJobDriver]]:
        """A lane per model served one call per request; a provider-batch
        model gets an upstream-job driver instead, and a lane for the rows
        that fall back to its real-time upstream if it names one."""
        plain, batch = upstream_jobs.split_backends(backends.items())
        lanes = {name: Lane(models[name], backend) for name, backend in plain.items()}
        drivers = {}
        for name, backend in batch.items():
            drivers[name] = upstream_jobs.UpstreamJobDriver(
                self.store,
                backend,
                models[name],
                options=self.options,
                policy=self.policy,
                metrics=self.metrics,
                worker_id=self.worker_id,
            )
            if backend.realtime is not None:
                lanes[name] = Lane(models[name], backend, route=uj.Path.REALTIME.value)
        return lanes, drivers

    # -- lifecycle ------------------------------------------------------------
    def notify(self) -> None:
        """New work was submitted in this process: claim now, not at the next poll."""
        self._wake.set()
        for lane in self.lanes.values():
            lane.room_freed.set()
            lane.call_freed.set()

    def drain(self) -> None:
        """Stop claiming; ``run`` returns once in-flight requests finish."""
        self._draining.set()
        self.notify()

    async def run(self) -> None:
        """Work until ``drain()``; then finish in-flight requests (up to the
        drain grace period) and return."""
        writer = asyncio.create_task(self.writer.run(), name="outcome-writer")
        helpers = [
            asyncio.create_task(self._heartbeat_loop(), name="heartbeat"),
            asyncio.create_task(self.generating.run(), name="generating-marks"),
            asyncio.create_task(self._sweep_loop(), name="sweep"),
            asyncio.create_task(self._report_loop(), name="report"),
            asyncio.create_task(self.retention.run(), name="retention"),
        ]
        lanes = [
            asyncio.create_task(self._lane_loop(lane), name=f"lane:{name}")
            for name, lane in self.lanes.items()
        ] + [
            asyncio.create_task(driver.run(self._draining), name=f"upstream-jobs:{name}")
            for name, driver in self.drivers.items()
        ]
        try:
            await self._draining.wait()
            await asyncio.gather(*lanes)
            await self._finish_inflight()
        finally:
            for task in [*lanes, *helpers]:
                task.cancel()
            await asyncio.gather(*lanes, *helpers, return_exceptions=True)
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
            # Last word: the final counters, and that this worker is gone
            # (readiness stops counting it at once, not a lease later).
            await self._report(stopped=True)

    async def _finish_inflight(self) -> None:
        tasks = [task for lane in self.lanes.values() for task, _ in lane.inflight.values()]
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=self.options.drain_seconds)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    # -- dispatch -------------------------------------------------------------
    async def _lane_loop(self, lane: Lane) -> None:
        poll = self.options.poll_seconds
        while not self._draining.is_set():
            if lane.room < lane.claim_batch:
                lane.room_freed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lane.room_freed.wait(), poll)
                continue
            claimed = await self._claim(lane, lane.room)
            for request in claimed:
                trace.claimed(request, self.worker_id)
                task = asyncio.create_task(self._run_one(lane, request))
                lane.inflight[request.id] = (task, time.monotonic())
                task.add_done_callback(functools.partial(self._release, lane, request.id))
            if not claimed:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), poll)

    async def _claim(self, lane: Lane, n: int) -> list[ClaimedRequest]:
        try:
            return await asyncio.to_thread(
                self.store.claim,
                lane.model.name,
                n,
                self.worker_id,
                time.time(),
                self.options.lease_seconds,
                lane.route,
            )
        except Exception:
            log.exception("claim failed; retrying after a pause")
            await asyncio.sleep(self.options.poll_seconds)
            return []

    @staticmethod
    def _release(lane: Lane, request_id: int, _task: object) -> None:
        lane.inflight.pop(request_id, None)
        lane.room_freed.set()

    async def _run_one(self, lane: Lane, request: ClaimedRequest) -> None:
        acquired = await lane.acquire_call(self._draining)
        started = time.monotonic()
        if acquired:
            self.generating.add(request.id)
            try:
                outcome = await self._attempt(lane, request)
            finally:
                lane.release_call()
        else:
            outcome = self._handed_back(request)
        seconds = time.monotonic() - started
        if lane.route is not None:
            outcome = dataclasses.replace(outcome, route=lane.route)

        def written(applied: bool) -> None:
            self.metrics.record(lane.model.name, outcome, applied)
            if lane.route is not None:
                upstream_jobs.count_realtime(self.metrics, lane.model.name, outcome, applied)
            trace.attempt_ended(request, outcome, applied, seconds)

        await self.writer.write(outcome, request.batch_id, then=written)

    def _handed_back(self, request: ClaimedRequest) -> batch_model.Outcome:
        """Draining before this request started: back to the queue as the
        retry policy decides for an attempt never made (at once, attempt kept)."""
        decision = self.policy.decide(retry.NOT_STARTED, request.attempt)
        assert isinstance(decision, retry.RetryAt)  # an unstarted request is never given up
        return batch_model.Outcome(
            request_id=request.id,
            attempt=request.attempt,
            worker_id=self.worker_id,
            state=RequestState.QUEUED,
            not_before=time.time() + decision.delay,
            refund_attempt=decision.refund_attempt,
        )

    async def _attempt(self, lane: Lane, request: ClaimedRequest) -> batch_model.Outcome:
        probing = lane.throttle.breaker_open
        grant = None
        try:
            canonical_request = canonical.load(request.params)
            capability.check(lane.model.name, lane.capabilities, canonical_request)
            if lane.limiter.enabled:
                grant = await lane.limiter.acquire(tokens.upper_bound(canonical_request))
            started = time.monotonic()
            try:
                response = await _dispatch(lane, canonical_request)
            finally:
                self.metrics.observe_call(lane.model.name, time.monotonic() - started)
        except base.BackendError as exc:
            if grant is not None:
                lane.limiter.settle(grant, 0)
            return self._failed(lane, request, exc, probing)
        except Exception as exc:  # a bug in a backend must not kill the worker
            return self._crashed(lane, request, exc)
        lane.throttle.on_success()
        # Clients see the model name they asked for, not the upstream's alias.
        response = response.model_copy(update={"model": canonical_request.model})
        input_tokens, output_tokens, cached_tokens, reasoning_tokens = canonical.token_counts(
            response
        )
        if grant is not None:
            lane.limiter.settle(grant, input_tokens + output_tokens)
        return self._outcome(
            request,
            RequestState.SUCCEEDED,
            result=response.model_dump(exclude_none=True),
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cached_tokens=cached_tokens,
            reasoning_tokens=reasoning_tokens,
            cost=lane.model.batch_cost(input_tokens, output_tokens),
        )

    def _outcome(
        self, request: ClaimedRequest, state: RequestState, **fields: Any
    ) -> batch_model.Outcome:
        return batch_model.Outcome(
            request_id=request.id,
            attempt=request.attempt,
            worker_id=self.worker_id,
            state=state,
            **fields,
        )

    def _failed(
        self, lane: Lane, request: ClaimedRequest, exc: base.BackendError, probing: bool
    ) -> batch_model.Outcome:
        """A backend's failure: paces the lane, then the retry policy decides
        between another attempt (queued, after a delay) and giving up.
        ``probing``: this attempt was the one call let through an open breaker."""
        if exc.retryable:
            lane.throttle.on_failure(
                overloaded=exc.overloaded, retry_after=exc.retry_after, now=time.monotonic()
            )
        breaker = retry.Breaker(
            was_open=probing,
            pause_left=max(lane.throttle.paused_until - time.monotonic(), 0.0),
        )
        decision = self.policy.decide(
            retry.Failure(exc.retryable, exc.retry_after), request.attempt, breaker
        )
        if isinstance(decision, retry.GiveUp):
            return self._outcome(request, RequestState.ERRORED, error=exc.request_error())
        return self._outcome(
            request,
            RequestState.QUEUED,
            error=exc.request_error(),
            not_before=time.time() + decision.delay,
            refund_attempt=decision.refund_attempt,
        )

    def _crashed(self, lane: Lane, request: ClaimedRequest, exc: Exception) -> batch_model.Outcome:
        """A bug in a backend: logged, and that request errors (not retried)."""
        log.exception(
            "backend %s crashed on %s/%s",
            lane.model.name,
            request.batch_id,
            request.custom_id,
            extra={
                "event": "backend_crashed",
                "batch_id": request.batch_id,
                "custom_id": request.custom_id,
                "request_id": request.id,
                "model": lane.model.name,
                "attempt": request.attempt,
            },
        )
        return self._outcome(
            request,
            RequestState.ERRORED,
            error=failures.RequestError(failures.ErrorType.API, f"internal error: {exc!r}"),
        )

    # -- leases and sweeps ----------------------------------------------------
    async def _heartbeat_loop(self) -> None:
        """Extend our leases; cancel the tasks of requests we no longer hold."""
        options = self.options
        last_extend = time.monotonic()
        while True:
            await asyncio.sleep(min(options.sweep_seconds, options.heartbeat_seconds))
            asked_at = time.monotonic()
            try:
                if asked_at - last_extend >= options.heartbeat_seconds:
                    working_on = [rid for lane in self.lanes.values() for rid in lane.inflight]
                    held = await asyncio.to_thread(
                        self.store.extend_leases,
                        self.worker_id,
                        working_on,
                        time.time(),
                        options.lease_seconds,
                    )
                    last_extend = time.monotonic()
                else:
                    held = await asyncio.to_thread(self.store.held_request_ids, self.worker_id)
            except Exception:
                log.exception("heartbeat failed")
                continue
            for lane in self.lanes.values():
                for request_id, (task, claimed_at) in list(lane.inflight.items()):
                    # A claim that committed after we asked is simply not in
                    # the answer yet; only older ones were really lost.
                    if request_id not in held and claimed_at < asked_at:
                        task.cancel()

    async def _report_loop(self) -> None:
        """Heartbeat this process (readiness) and report its counters
        (/metrics) every ``heartbeat_seconds``."""
        while True:
            await self._report(stopped=False)
            await asyncio.sleep(self.options.heartbeat_seconds)

    async def _report(self, *, stopped: bool) -> None:
        now = time.time()
        heartbeat = WorkerHeartbeat(
            id=self.worker_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            models=tuple(sorted({*self.lanes, *self.drivers})),
            started_at=self.started_at,
            last_seen_at=now,
            stopped_at=now if stopped else None,
            stats=self.metrics.samples(),
        )
        try:
            await asyncio.to_thread(self.store.record_worker, heartbeat)
        except Exception:
            log.exception("could not report this worker's heartbeat")

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self.options.sweep_seconds)
            try:
                await asyncio.to_thread(self.sweep_once)
            except Exception:
                log.exception("sweep failed")

    def sweep_once(self) -> None:
        now = time.time()
        lost = self.store.requeue_lost_leases(now, self.policy)
        if lost:
            log.warning("%d requests lost their worker (lease ran out): requeued or errored", lost)
        trace.batches_ended(self.store.expire_batches(now), "expired")
        trace.batches_ended(self.store.finalize_batches(now), "ended")
        # Stopped workers' rows fold into one, so every scrape reads as many
        # rows as there are live workers (plus one), however many restarts.
        self.store.retire_workers(now - self.options.lease_seconds)
