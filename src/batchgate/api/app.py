"""The ASGI app: dialect routers over one set of services."""

from __future__ import annotations

from collections.abc import Mapping

import fastapi

from batchgate import config
from batchgate.api import (
    anthropic,
    batches,
    deps,
    errors,
    files,
    headers,
    keys,
    models,
    nul_guard,
    openapi,
    ops,
    proxy,
    ui,
    webhooks,
)
from batchgate.api.common import JsonResponse
from batchgate.backends import base
from batchgate.dialects import openai
from batchgate.services.batch_create import BatchCreation, BatchSettings, declared_capabilities
from batchgate.services.batches import BatchService
from batchgate.services.estimate import EstimateService
from batchgate.services.file_batches import FileBatchService
from batchgate.services.files import FileService
from batchgate.services.keys import KeyService
from batchgate.services.rate_limit import RateLimiter
from batchgate.services.rerun import RerunService
from batchgate.services.sessions import SessionService
from batchgate.services.webhooks import WebhookService
from batchgate.store import port


def build_services(
    settings: config.Settings,
    store: port.JobStore,
    backends: Mapping[str, base.Backend] | None = None,
) -> deps.Services:
    """The services over ``store``; ``backends`` this process built (a worker
    in the same process) say what their models serve, for the capability
    check at submit; other models' backends declare it from their settings."""
    creation = BatchCreation(
        store,
        BatchSettings.of(settings),
        capabilities=declared_capabilities(settings.models, backends),
    )
    file_service = FileService(
        store,
        retention=settings.retention,
        default_quotas=settings.quotas,
        measure=openai.result_file_bytes,
    )
    key_service = KeyService(store)
    file_batches = FileBatchService(creation, file_service, settings.limits)
    return deps.Services(
        settings=settings,
        store=store,
        creation=creation,
        batches=BatchService(store),
        reruns=RerunService(store, creation),
        keys=key_service,
        files=file_service,
        file_batches=file_batches,
        estimates=EstimateService(
            store, settings.models, settings.estimate, creation, file_batches
        ),
        webhooks=WebhookService(store, settings.webhooks),
        rate_limiter=RateLimiter(settings.rate_limit),
        sessions=SessionService(key_service, max_age_seconds=settings.ui.session_hours * 3600),
    )


def create_app(services: deps.Services) -> deps.BatchgateApp:
    app = deps.BatchgateApp(
        title="batchgate",
        version="0.1.0",
        default_response_class=JsonResponse,
        dependencies=[fastapi.Depends(nul_guard.refuse_nul)],
    )
    app.services = services
    errors.install(app)
    app.include_router(batches.router)
    app.include_router(files.router)
    app.include_router(anthropic.router)
    app.include_router(models.router)
    app.include_router(keys.router)
    app.include_router(ops.router)
    app.include_router(webhooks.router)
    if services.settings.ui.enabled:
        ui.install(app)
    openapi.install(app)
    app.add_middleware(headers.NoSniff)
    # Outermost, so every route and template sees the client's own address.
    app.add_middleware(proxy.ForwardedHeaders, trusted_hosts=services.settings.forwarded_allow_ips)
    return app
