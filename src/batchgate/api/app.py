"""The ASGI app: dialect routers over one set of services."""

from __future__ import annotations

from batchgate import config
from batchgate.api import anthropic, batches, deps, errors, models
from batchgate.api.common import JsonResponse
from batchgate.services.batches import BatchService
from batchgate.services.keys import KeyService
from batchgate.store import port


def build_services(settings: config.Settings, store: port.JobStore) -> deps.Services:
    return deps.Services(
        settings=settings,
        store=store,
        batches=BatchService(store, settings),
        keys=KeyService(store),
    )


def create_app(services: deps.Services) -> deps.BatchgateApp:
    app = deps.BatchgateApp(title="batchgate", version="0.1.0", default_response_class=JsonResponse)
    app.services = services
    errors.install(app)
    app.include_router(batches.router)
    app.include_router(anthropic.router)
    app.include_router(models.router)

    @app.get("/health", include_in_schema=False)
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
