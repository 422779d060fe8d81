"""Typed dependencies: the services a route needs, and the caller's key."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Annotated, Protocol, cast

import fastapi

from batchgate import config
from batchgate.domain import errors
from batchgate.domain import keys as key_model
from batchgate.metrics import scrape
from batchgate.services.batch_create import BatchCreation
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


class OperatorStore(scrape.ScrapeSource, port.UpstreamJobStore, Protocol):
    """What the operator routes read directly: figures, worker heartbeats,
    and provider-batch jobs (their turnaround on the models page)."""


@dataclasses.dataclass
class Services:
    settings: config.Settings
    # Routes reach the store through services; only the operator routes
    # (/ready, /metrics, the dashboard's model figures) read it directly.
    store: OperatorStore
    creation: BatchCreation
    batches: BatchService
    reruns: RerunService
    keys: KeyService
    files: FileService
    file_batches: FileBatchService
    estimates: EstimateService
    webhooks: WebhookService
    rate_limiter: RateLimiter
    sessions: SessionService
    # Called after a batch is stored, so an in-process worker claims at once.
    on_new_work: Callable[[], None] = lambda: None


class BatchgateApp(fastapi.FastAPI):
    services: Services


def get_services(request: fastapi.Request) -> Services:
    return cast(BatchgateApp, request.app).services


ServicesDep = Annotated[Services, fastapi.Depends(get_services)]


def bearer_or_api_key(request: fastapi.Request) -> str | None:
    """The key from ``Authorization: Bearer`` or ``x-api-key`` (Anthropic's SDK)."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("x-api-key") or None


def client_address(request: fastapi.Request) -> str:
    """The caller's address (a proxy's own unless uvicorn trusts its
    ``X-Forwarded-For``: ``--forwarded-allow-ips``)."""
    return request.client.host if request.client else ""


def authenticate(request: fastapi.Request, services: ServicesDep) -> key_model.ApiKey:
    """The caller's key, within its rate limit (429 with Retry-After past it).
    A key that fails is counted against the client's address (429 instead of
    401 past that budget); a key that verifies is never refused for it."""
    try:
        caller = services.keys.authenticate(bearer_or_api_key(request))
    except errors.Unauthorized:
        services.rate_limiter.failed(client_address(request))
        raise
    services.rate_limiter.check(caller.id)
    return caller


CallerDep = Annotated[key_model.ApiKey, fastapi.Depends(authenticate)]


def require_admin(caller: CallerDep) -> key_model.ApiKey:
    """The caller, who must hold an admin key (403 otherwise: the key is
    valid, its scope is not enough)."""
    if not caller.admin:
        raise errors.Forbidden("this route needs an admin API key")
    return caller


AdminDep = Annotated[key_model.ApiKey, fastapi.Depends(require_admin)]
