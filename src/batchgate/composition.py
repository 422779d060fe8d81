"""Composition: settings -> store, backends, worker, app. The only place that
wires concrete parts together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping

from batchgate import config
from batchgate.api import app as api_app
from batchgate.api import deps
from batchgate.backends import base, registry
from batchgate.domain import batch as batch_model
from batchgate.store import port, sql
from batchgate.worker import webhooks
from batchgate.worker.loop import Worker

log = logging.getLogger("batchgate")


def open_store(settings: config.Settings) -> port.JobStore:
    return sql.SqlJobStore.open(settings.resolved_database_url())


def build_backends(
    settings: config.Settings, given: Mapping[str, base.Backend] | None = None
) -> dict[str, base.Backend]:
    """A backend per configured model; ``given`` ones (a test's
    ``testing.FakeBackend``) take the place of their model's."""
    given = given or {}
    return {
        name: given[name] if name in given else registry.create(entry)
        for name, entry in settings.models.items()
    }


def build_worker(
    settings: config.Settings, store: port.JobStore, backends: dict[str, base.Backend]
) -> Worker:
    """A worker given the settings sections it reads."""
    return Worker(
        store,
        backends,
        models=settings.models,
        options=settings.worker,
        retention=settings.retention,
        metrics=settings.metrics.enabled,
    )


async def close_backends(backends: dict[str, base.Backend]) -> None:
    for backend in backends.values():
        with contextlib.suppress(Exception):
            await backend.aclose()


@contextlib.asynccontextmanager
async def background_worker(
    settings: config.Settings,
    store: port.JobStore,
    given_backends: Mapping[str, base.Backend] | None = None,
) -> AsyncIterator[Worker]:
    """A worker running on this event loop for the duration of the block;
    leaving the block drains it and closes its backends."""
    backends = build_backends(settings, given_backends)
    worker = build_worker(settings, store, backends)
    task = asyncio.create_task(worker.run(), name="worker")
    try:
        async with webhook_deliverer(settings, store, worker.worker_id):
            yield worker
    finally:
        worker.drain()
        await task
        await close_backends(backends)


@contextlib.asynccontextmanager
async def webhook_deliverer(
    settings: config.Settings, store: port.JobStore, worker_id: str
) -> AsyncIterator[None]:
    """Webhook delivery alongside a worker, for the duration of the block.
    Stopping cuts sends short; their leases lapse and they are sent again."""
    deliverer = webhooks.Deliverer(store, settings.webhooks, worker_id)
    task = asyncio.create_task(deliverer.run(), name="webhooks")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def create_server_app(
    settings: config.Settings,
    store: port.JobStore,
    *,
    with_worker: bool = True,
    backends: Mapping[str, base.Backend] | None = None,
) -> deps.BatchgateApp:
    """The API, with a worker in the same event loop unless told otherwise.
    Shutting the app down drains the worker (SIGTERM under uvicorn).
    ``backends`` replace the configured ones of the same model name."""
    services = api_app.build_services(settings, store, backends)
    app = api_app.create_app(services)
    if not with_worker:
        return app

    @contextlib.asynccontextmanager
    async def lifespan(_app: object) -> AsyncIterator[None]:
        async with background_worker(settings, store, backends) as worker:
            services.on_new_work = worker.notify
            yield

    app.router.lifespan_context = lifespan
    return app


async def run_worker(settings: config.Settings, store: port.JobStore) -> None:
    """A standalone worker: runs until SIGTERM/SIGINT, then drains and returns."""
    import signal

    backends = build_backends(settings)
    worker = build_worker(settings, store, backends)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, worker.drain)
    log.info("worker %s started for models: %s", worker.worker_id, ", ".join(settings.models))
    try:
        async with webhook_deliverer(settings, store, worker.worker_id):
            await worker.run()
    finally:
        await close_backends(backends)


async def run_until_ended(
    settings: config.Settings,
    store: port.JobStore,
    batch_id: str,
    on_progress: Callable[[batch_model.Batch], None] | None = None,
) -> batch_model.Batch:
    """Work on the store until ``batch_id`` has ended (``batchgate run``)."""
    async with background_worker(settings, store):
        while True:
            batch = await asyncio.to_thread(store.get_batch, batch_id)
            if batch is None:
                raise LookupError(f"batch {batch_id} vanished")
            if on_progress is not None:
                on_progress(batch)
            if batch.status.is_ended:
                return batch
            await asyncio.sleep(0.2)
