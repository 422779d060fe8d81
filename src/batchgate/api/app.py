"""The ASGI app: dialect routers over one set of services."""

from __future__ import annotations

from batchgate import config
from batchgate.api import anthropic, batches, deps, errors, files, models
from batchgate.api.common import JsonResponse
from batchgate.services.batches import BatchService
from batchgate.services.file_batches import FileBatchService
from batchgate.services.files import FileService
from batchgate.services.keys import KeyService
from batchgate.store import port


def build_services(settings: config.Settings, store: port.JobStore) -> deps.Services:
    batch_service = BatchService(store, settings)
    file_service = FileService(store, settings)
    return deps.Services(
        settings=settings,
        store=store,
        batches=batch_service,
        keys=KeyService(store),
        files=file_service,
        file_batches=FileBatchService(batch_service, file_service, settings),
    )


def create_app(services: deps.Services) -> deps.BatchgateApp:
    app = deps.BatchgateApp(title="batchgate", version="0.1.0", default_response_class=JsonResponse)
    app.services = services
    errors.install(app)
    app.include_router(batches.router)
    app.include_router(files.router)
    app.include_router(anthropic.router)
    app.include_router(models.router)

    @app.get("/health", include_in_schema=False)
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
