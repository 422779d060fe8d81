"""Routes for operators and their tools: liveness, readiness, Prometheus.

``/health`` and ``/ready`` need no key (load balancers and orchestrators probe
them, and they say nothing about any tenant); ``/metrics`` needs an admin key
here, or no key on the separate ``[metrics] port`` listener (cli/local.py).
"""

from __future__ import annotations

import time
from typing import Any

import fastapi
import prometheus_client

from batchgate.api.common import JsonResponse
from batchgate.api.deps import AdminDep, ServicesDep
from batchgate.domain import errors
from batchgate.metrics import scrape

router = fastapi.APIRouter(include_in_schema=False)


@router.get("/health")
def health() -> JsonResponse:
    """The process is up and serving; nothing else is checked."""
    return JsonResponse({"status": "ok"})


@router.get("/ready")
def ready(services: ServicesDep) -> JsonResponse:
    """Ready to take and run batches: the database answers, its schema is at
    this code's newest migration, and a worker heartbeat within the lease."""
    checks: dict[str, dict[str, Any]] = {}
    try:
        current, head = services.store.schema_revision()
    except Exception as exc:
        checks["database"] = {"ok": False, "error": type(exc).__name__}
    else:
        checks["database"] = {"ok": True}
        checks["migrations"] = {"ok": current == head, "current": current, "head": head}
        lease = services.settings.worker.lease_seconds
        now = time.time()
        try:
            alive = [
                worker
                for worker in services.store.list_workers(seen_since=now - lease)
                if worker.is_alive(now, lease)
            ]
        except Exception as exc:
            checks["workers"] = {"ok": False, "error": type(exc).__name__}
        else:
            checks["workers"] = {
                "ok": bool(alive),
                "alive": len(alive),
                "within_seconds": lease,
                "last_seen_at": max((worker.last_seen_at for worker in alive), default=None),
            }
    is_ready = len(checks) == 3 and all(check["ok"] for check in checks.values())
    return JsonResponse(
        {"status": "ready" if is_ready else "not_ready", "checks": checks},
        status_code=200 if is_ready else 503,
    )


@router.get("/metrics")
def metrics(_admin: AdminDep, services: ServicesDep) -> fastapi.Response:
    if not services.settings.metrics.enabled:
        raise errors.NotFound("metrics are disabled ([metrics] enabled = false)")
    settings = services.settings
    body = prometheus_client.generate_latest(
        scrape.registry(services.store, list(settings.models), settings.worker.lease_seconds)
    )
    return fastapi.Response(body, media_type=prometheus_client.CONTENT_TYPE_LATEST)
