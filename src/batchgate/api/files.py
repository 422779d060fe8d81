"""``/v1/files``: OpenAI's Files API for batch input, and the rendered
output/error files of OpenAI-dialect batches."""

from __future__ import annotations

import asyncio

import fastapi
from fastapi.responses import StreamingResponse

from batchgate.api import common, uploads
from batchgate.api.deps import CallerDep, ServicesDep
from batchgate.dialects import openai
from batchgate.domain import errors
from batchgate.domain import files as file_model

router = fastapi.APIRouter()


def _check_purpose_early(fields: dict[str, str]) -> None:
    # Clients usually send ``purpose`` before the file: refuse before reading it.
    if "purpose" in fields:
        openai.check_purpose(fields["purpose"])


@router.post("/v1/files")
async def upload_file(
    request: fastapi.Request, caller: CallerDep, services: ServicesDep
) -> common.JsonResponse:
    settings = services.settings
    async with uploads.receive(
        request,
        file_field="file",
        max_file_bytes=settings.limits.max_file_bytes,
        spool_dir=settings.data_dir / "tmp",
        on_file_start=_check_purpose_early,
    ) as upload:
        purpose = openai.check_purpose(upload.fields.get("purpose"))
        expires_after = openai.parse_file_expires_after(upload.fields)
        if upload.filename is None:
            raise errors.InvalidRequest("missing the file field 'file'", param="file")
        record = await asyncio.to_thread(
            services.files.store_upload,
            caller.id,
            purpose=purpose,
            filename=upload.filename,
            chunks=upload.chunks(),
            expires_after=expires_after,
        )
    return common.JsonResponse(openai.file_object(record))


@router.get("/v1/files")
def list_files(
    caller: CallerDep,
    services: ServicesDep,
    purpose: str | None = None,
    limit: int = 10_000,
    after: str | None = None,
    order: str = "desc",
) -> common.JsonResponse:
    records, has_more = services.files.list(
        caller.id, purpose=purpose, limit=limit, after=after, order=order
    )
    return common.JsonResponse(openai.file_list(records, has_more))


@router.get("/v1/files/{file_id}")
def retrieve_file(file_id: str, caller: CallerDep, services: ServicesDep) -> common.JsonResponse:
    return common.JsonResponse(openai.file_object(services.files.get(caller.id, file_id)))


@router.get("/v1/files/{file_id}/content")
def file_content(file_id: str, caller: CallerDep, services: ServicesDep) -> StreamingResponse:
    record = services.files.get(caller.id, file_id, measure=False)
    if record.kind == file_model.FileKind.STORED:
        return StreamingResponse(
            services.files.chunks(record), media_type="application/octet-stream"
        )
    content = services.files.result_rows(record)
    return StreamingResponse(
        common.json_lines(content.rows, lambda row: openai.result_line(content.batch, row)),
        media_type="application/x-ndjson",
    )


@router.delete("/v1/files/{file_id}")
def delete_file(file_id: str, caller: CallerDep, services: ServicesDep) -> common.JsonResponse:
    services.files.delete(caller.id, file_id)
    return common.JsonResponse(openai.deleted_file(file_id))
