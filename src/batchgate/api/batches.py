"""``/v1/batches``: the native dialect (inline requests), and the route the
OpenAI dialect shares (file batches, same paths)."""

from __future__ import annotations

import contextlib

import fastapi
import orjson
from fastapi.responses import StreamingResponse

from batchgate.api import common
from batchgate.api.deps import CallerDep, Services, ServicesDep
from batchgate.dialects import message_results, native, openai
from batchgate.domain import errors
from batchgate.domain.batch import Batch
from batchgate.domain.states import Dialect
from batchgate.services.batches import ParsedRequest

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
    body: common.RawBody, caller: CallerDep, services: ServicesDep
) -> common.JsonResponse:
    if _is_file_batch(body):
        batch = services.file_batches.create(caller.id, openai.parse_create(body))
        services.on_new_work()
        return common.JsonResponse(render(batch))
    parsed = native.parse_create(body)
    batch, input_file = services.batches.create_inline(
        caller.id,
        [ParsedRequest(item.custom_id, item.params) for item in parsed.requests],
        endpoint=native.ENDPOINT,
        metadata=parsed.metadata,
    )
    services.on_new_work()
    return common.JsonResponse(native.render_created(batch, input_file))


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


@router.post("/v1/batches/{batch_id}/cancel")
def cancel_batch(batch_id: str, caller: CallerDep, services: ServicesDep) -> common.JsonResponse:
    _own_batch(services, caller.id, batch_id)
    return common.JsonResponse(render(services.batches.cancel(caller.id, batch_id)))


@router.get("/v1/batches")
def list_batches(
    caller: CallerDep, services: ServicesDep, limit: int = 20, after: str | None = None
) -> common.JsonResponse:
    batches, has_more = services.batches.list(
        caller.id, limit=limit, after=after, dialects=_DIALECTS
    )
    data = [render(batch) for batch in batches]
    return common.JsonResponse(
        {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": has_more,
        }
    )
