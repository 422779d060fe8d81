"""Files as batchgate keeps them: uploaded input, and the result files of
OpenAI-dialect batches (rendered on demand, see domain/result_files.py)."""

from __future__ import annotations

import dataclasses
import enum


class FileKind(enum.StrEnum):
    STORED = "stored"  # uploaded (or inline) content, kept in file_chunks
    OUTPUT = "output"  # rendered from the batch's succeeded requests
    ERRORS = "errors"  # rendered from its errored, cancelled and expired ones


class FileStatus(enum.StrEnum):
    """OpenAI's file statuses that batchgate uses: a result file is
    ``uploaded`` until its size has been measured, then ``processed``."""

    UPLOADED = "uploaded"
    PROCESSED = "processed"


class FilePurpose(enum.StrEnum):
    BATCH = "batch"  # a batch's input (uploaded, or made from inline requests)
    BATCH_OUTPUT = "batch_output"  # a batch's output or error file


@dataclasses.dataclass(frozen=True)
class FileRecord:
    id: str
    owner: str
    purpose: FilePurpose
    filename: str
    bytes: int
    status: FileStatus
    created_at: float
    batch_id: str | None = None
    kind: FileKind = FileKind.STORED
    # OpenAI's ``expires_at``: after it the file is no longer served, and
    # the retention sweep purges its content (None: kept until deleted).
    expires_at: float | None = None

    def is_expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now
