"""Result files: the output and error files of an ended OpenAI-dialect batch.

They are not stored content. Each is a ``files`` row (``kind`` output or
errors, ``batch_id`` set) created by the store in the same transaction that
ends the batch, and its lines are rendered on demand from the batch's request
rows. Their ids are derived from the batch id, so the batch object can name
them without a query, and a re-created row could never get a different id.

A batch gets an output file only if at least one request succeeded, and an
error file only if at least one errored, was cancelled or expired (as OpenAI
does: ``output_file_id`` / ``error_file_id`` are null otherwise).
"""

from __future__ import annotations

from batchgate.domain.counts import StateTally
from batchgate.domain.files import FileKind, FilePurpose, FileRecord, FileStatus
from batchgate.domain.states import Dialect, RequestState

RESULT_KINDS = (FileKind.OUTPUT, FileKind.ERRORS)

_STATES: dict[FileKind, tuple[RequestState, ...]] = {
    FileKind.OUTPUT: (RequestState.SUCCEEDED,),
    FileKind.ERRORS: (RequestState.ERRORED, RequestState.CANCELED, RequestState.EXPIRED),
}

# Only the OpenAI dialect has result files; native and Anthropic batches
# serve their results on the batch's own URL.
DIALECTS = frozenset({Dialect.OPENAI})


def states(kind: FileKind) -> tuple[RequestState, ...]:
    """The request states whose rows make up a result file of ``kind``."""
    return _STATES[kind]


def kind_of(state: RequestState) -> FileKind:
    """Which result file a terminal request's line goes to."""
    return FileKind.OUTPUT if state is RequestState.SUCCEEDED else FileKind.ERRORS


def kinds_present(tally: StateTally) -> list[FileKind]:
    """The result files an ended batch with this tally has."""
    return [kind for kind in RESULT_KINDS if any(tally.count(s) for s in _STATES[kind])]


def file_id(batch_id: str, kind: FileKind) -> str:
    """``batch_<token>`` -> ``file-output-<token>`` / ``file-errors-<token>``."""
    token = batch_id.split("_", 1)[-1]
    return f"file-{kind.value}-{token}"


def filename(batch_id: str, kind: FileKind) -> str:
    return f"{batch_id}_{kind.value}.jsonl"


def record(
    batch_id: str, owner: str, kind: FileKind, now: float, expires_at: float | None = None
) -> FileRecord:
    """The file row of a batch's result file, made when the batch ends; its
    size is measured on first description (status ``uploaded`` until then).
    It expires with the batch's results."""
    return FileRecord(
        id=file_id(batch_id, kind),
        owner=owner,
        purpose=FilePurpose.BATCH_OUTPUT,
        filename=filename(batch_id, kind),
        bytes=0,
        status=FileStatus.UPLOADED,
        created_at=now,
        batch_id=batch_id,
        kind=kind,
        expires_at=expires_at,
    )
