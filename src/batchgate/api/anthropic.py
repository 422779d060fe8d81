"""``/v1/messages/batches``: Anthropic's Message Batches API.

Errors on these paths are rendered in Anthropic's envelope by api/errors.py
(chosen by the ``/v1/messages`` prefix). The ``anthropic-version`` header the
SDK sends is accepted and not checked: there is one version of this API.
"""

from __future__ import annotations

from typing import Annotated

import fastapi
from fastapi.responses import StreamingResponse

from batchgate.api import common
from batchgate.api import errors as api_errors
from batchgate.api.deps import CallerDep, ServicesDep
from batchgate.dialects import anthropic, rerun
from batchgate.domain import errors
from batchgate.domain.batch import Batch
from batchgate.domain.states import Dialect
from batchgate.services.batch_create import ParsedRequest

router = fastapi.APIRouter(prefix="/v1/messages/batches")

_RESULTS_ROUTE = "anthropic_batch_results"


def _render(request: fastapi.Request, batch: Batch) -> dict[str, object]:
    # Absolute, from the URL the client used: the SDK GETs it as given.
    results_url = str(request.url_for(_RESULTS_ROUTE, batch_id=batch.id))
    return anthropic.render_batch(batch, results_url=results_url)


def _get(services: ServicesDep, owner: str, batch_id: str) -> Batch:
    """The caller's Anthropic batch; batches made through the other front
    doors do not exist here."""
    batch = services.batches.get(owner, batch_id)
    if batch.dialect is not Dialect.ANTHROPIC:
        raise errors.NotFound(f"no batch with id {batch_id!r}", param="batch_id")
    return batch


@router.post("")
def create_batch(
    body: common.RawBody,
    request: fastapi.Request,
    caller: CallerDep,
    services: ServicesDep,
    dry_run: bool = False,
) -> common.JsonResponse:
    # As on /v1/batches: a dry run checks the quotas itself and reports a
    # refusal in its answer (services/estimate.py), so only a create gets the
    # 429 for a full key before its body is parsed.
    if not dry_run:
        services.creation.refuse_when_full(caller)
    items = [ParsedRequest(item.custom_id, item.params) for item in anthropic.parse_create(body)]
    if dry_run:  # validate and estimate; store nothing (a batchgate extension)
        figures = services.estimates.inline(caller, items, anthropic=True)
        return common.JsonResponse(api_errors.render_estimate(figures))
    batch = services.creation.create(
        owner=caller.id, dialect=Dialect.ANTHROPIC, endpoint=anthropic.ENDPOINT, requests=items
    )
    services.on_new_work()
    return common.JsonResponse(_render(request, batch))


@router.get("")
def list_batches(
    request: fastapi.Request,
    caller: CallerDep,
    services: ServicesDep,
    limit: int = 20,
    before_id: str | None = None,
    after_id: str | None = None,
) -> common.JsonResponse:
    batches, has_more = services.batches.list(
        caller.id, limit=limit, after=after_id, before=before_id, dialects=[Dialect.ANTHROPIC]
    )
    items = [_render(request, batch) for batch in batches]
    return common.JsonResponse(anthropic.render_page(items, has_more))


@router.get("/{batch_id}")
def get_batch(
    batch_id: str, request: fastapi.Request, caller: CallerDep, services: ServicesDep
) -> common.JsonResponse:
    return common.JsonResponse(_render(request, _get(services, caller.id, batch_id)))


@router.post("/{batch_id}/cancel")
def cancel_batch(
    batch_id: str, request: fastapi.Request, caller: CallerDep, services: ServicesDep
) -> common.JsonResponse:
    _get(services, caller.id, batch_id)
    return common.JsonResponse(_render(request, services.batches.cancel(caller.id, batch_id)))


@router.post("/{batch_id}/retry")
def retry_batch(
    batch_id: str,
    body: common.SmallBody,
    request: fastapi.Request,
    caller: CallerDep,
    services: ServicesDep,
) -> common.JsonResponse:
    """A new batch of this ended batch's errored or expired requests (a
    batchgate extension; Anthropic has no retry)."""
    error_types = rerun.parse_retry(body)
    child = services.reruns.rerun_failed(_get(services, caller.id, batch_id), error_types)
    services.on_new_work()
    return common.JsonResponse(_render(request, child))


@router.delete("/{batch_id}")
def delete_batch(batch_id: str, caller: CallerDep, services: ServicesDep) -> common.JsonResponse:
    services.batches.delete(_get(services, caller.id, batch_id))
    return common.JsonResponse(anthropic.render_deleted(batch_id))


@router.get("/{batch_id}/results", name=_RESULTS_ROUTE)
def batch_results(
    batch_id: str,
    caller: CallerDep,
    services: ServicesDep,
    status: Annotated[list[str] | None, fastapi.Query()] = None,
) -> StreamingResponse:
    """The results; while the batch is still processing, those of the requests
    that have finished so far (a batchgate extension: Anthropic answers only
    once the batch has ended, and the SDK still waits for ``results_url``).
    ``X-Batchgate-Results-Complete`` says which it is."""
    batch = _get(services, caller.id, batch_id)
    return common.results_so_far(services, batch, status, "application/x-jsonl")
