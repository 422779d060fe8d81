"""``/v1/batches``: the native dialect (inline requests), and the route the
OpenAI dialect shares (file batches, same paths)."""

from __future__ import annotations

import contextlib
from typing import Annotated

import fastapi
import orjson
from fastapi.responses import StreamingResponse

from batchgate.api import common
from batchgate.api import errors as api_errors
from batchgate.api.deps import CallerDep, Services, ServicesDep
from batchgate.dialects import message_results, native, openai, openai_objects, rerun
from batchgate.domain import errors
from batchgate.domain.batch import Batch
from batchgate.domain.keys import ApiKey
from batchgate.domain.states import Dialect
from batchgate.services.batch_create import ParsedRequest

router = fastapi.APIRouter()

# The dialects that live on /v1/batches (Anthropic batches have their own path).
_DIALECTS = (Dialect.NATIVE, Dialect.OPENAI)


def render(batch: Batch) -> dict[str, object]:
    # The OpenAI rendering names result files, which only OpenAI batches have.
    return openai.batch_object(batch)


def _is_file_batch(body: bytes) -> bool:
    """Whether a create body is OpenAI's ``{input_file_id, ...}`` rather than
    native inline requests. The substring test spares parsing a large native
    body twice; only a body that might be a file batch is parsed here."""
    if b'"input_file_id"' not in body:
        return False
    with contextlib.suppress(orjson.JSONDecodeError):
        parsed = orjson.loads(body)
        return isinstance(parsed, dict) and "input_file_id" in parsed
    return False


@router.post("/v1/batches")
def create_batch(
    body: common.RawBody, caller: CallerDep, services: ServicesDep, dry_run: bool = False
) -> common.JsonResponse:
    # A dry run checks the quotas itself and reports a refusal in its answer
    # (services/estimate.py), so only a create gets the 429 for a full key
    # before its body is parsed (the same order as the Anthropic route).
    if dry_run:
        return common.JsonResponse(_estimate(body, caller, services))
    services.creation.refuse_when_full(caller)
    if _is_file_batch(body):
        batch = services.file_batches.create(caller.id, openai.parse_create(body))
        services.on_new_work()
        return common.JsonResponse(render(batch))
    parsed = native.parse_create(body)
    batch, input_file = services.creation.create_inline(
        caller.id,
        [ParsedRequest(item.custom_id, item.params) for item in parsed.requests],
        endpoint=native.ENDPOINT,
        metadata=parsed.metadata,
    )
    services.on_new_work()
    return common.JsonResponse(native.render_created(batch, input_file))


def _estimate(body: bytes, caller: ApiKey, services: Services) -> dict[str, object]:
    """``?dry_run=true``: validate as create would and estimate; store nothing."""
    if _is_file_batch(body):
        parsed = openai.parse_create(body)
        figures = services.estimates.file(caller, parsed.input_file_id, parsed.endpoint)
        return api_errors.render_estimate(figures)
    requests = native.parse_create(body).requests
    figures = services.estimates.inline(
        caller, [ParsedRequest(item.custom_id, item.params) for item in requests], anthropic=False
    )
    return api_errors.render_estimate(figures)


def _own_batch(services: Services, owner: str, batch_id: str) -> Batch:
    """The caller's batch on these routes; Anthropic batches live elsewhere."""
    batch = services.batches.get(owner, batch_id)
    if batch.dialect not in _DIALECTS:
        raise errors.NotFound(f"no batch with id {batch_id!r}", param="batch_id")
    return batch


@router.get("/v1/batches/{batch_id}", response_model=None)
def get_batch(
    batch_id: str, request: fastapi.Request, caller: CallerDep, services: ServicesDep
) -> common.JsonResponse | StreamingResponse:
    batch = _own_batch(services, caller.id, batch_id)
    if (
        batch.dialect is Dialect.NATIVE
        and batch.status.is_ended
        and not common.wants_json_only(request.headers.get("accept"))
    ):
        return StreamingResponse(
            common.json_lines(services.batches.results(batch), message_results.result_line),
            media_type="application/x-ndjson",
        )
    return common.JsonResponse(render(batch))


@router.get("/v1/batches/{batch_id}/results")
def batch_results(
    batch_id: str,
    caller: CallerDep,
    services: ServicesDep,
    status: Annotated[list[str] | None, fastapi.Query()] = None,
) -> StreamingResponse:
    """The batch's finished requests so far, in its dialect's line shape
    (native: Anthropic's result lines; OpenAI: output/error file lines, in
    input order). Readable while the batch runs: the header
    ``X-Batchgate-Results-Complete`` says whether every request is in it.
    For OpenAI batches this is a batchgate extension, since OpenAI has no
    output file until the batch ends."""
    batch = _own_batch(services, caller.id, batch_id)
    return common.results_so_far(services, batch, status, "application/x-ndjson")


@router.get("/v1/batches/{batch_id}/errors")
def batch_errors(batch_id: str, caller: CallerDep, services: ServicesDep) -> StreamingResponse:
    """Every input error of a batch that failed validation, one JSON line
    each in ``errors.data[]``'s shape (the batch object keeps the first
    100 and their ``total``). Checked again from the input file, so it
    needs that file (404 once it is deleted); empty for other batches."""
    batch = _own_batch(services, caller.id, batch_id)
    found = services.file_batches.all_line_errors(batch)
    return StreamingResponse(
        common.json_lines(found, lambda error: error.to_json()),
        media_type="application/x-ndjson",
    )


@router.post("/v1/batches/{batch_id}/cancel")
def cancel_batch(batch_id: str, caller: CallerDep, services: ServicesDep) -> common.JsonResponse:
    _own_batch(services, caller.id, batch_id)
    return common.JsonResponse(render(services.batches.cancel(caller.id, batch_id)))


@router.post("/v1/batches/{batch_id}/retry")
def retry_batch(
    batch_id: str, body: common.SmallBody, caller: CallerDep, services: ServicesDep
) -> common.JsonResponse:
    """A new batch of this ended batch's errored or expired requests."""
    error_types = rerun.parse_retry(body)
    child = services.reruns.rerun_failed(_own_batch(services, caller.id, batch_id), error_types)
    services.on_new_work()
    return common.JsonResponse(render(child))


@router.get("/v1/batches")
def list_batches(
    caller: CallerDep,
    services: ServicesDep,
    limit: int = 20,
    after: str | None = None,
    all_dialects: bool = False,
) -> common.JsonResponse:
    """The caller's native and OpenAI batches; with ``all_dialects`` its
    Anthropic ones too, in this same batch object (usage and cost included),
    which Anthropic's own object has no place for (``batchgate status``)."""
    batches, has_more = services.batches.list(
        caller.id, limit=limit, after=after, dialects=None if all_dialects else _DIALECTS
    )
    data = [render(batch) for batch in batches]
    return common.JsonResponse(openai_objects.list_page(data, has_more))
