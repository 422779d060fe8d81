"""The body of ``POST .../{batch_id}/retry``, the same on every dialect's
path: ``{"error_types": [...]}`` (optional; an empty body retries every
errored or expired request)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from batchgate.dialects import paths
from batchgate.domain import errors, rerun


class RetryBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    error_types: list[str] | None = Field(default=None, min_length=1)


def parse_retry(body: bytes) -> list[str] | None:
    """The failure types to retry (None: all); raise InvalidRequest naming
    the bad entry."""
    if not body.strip():
        return None
    parsed = paths.parse_body(RetryBody, body)
    for index, kind in enumerate(parsed.error_types or []):
        if kind not in rerun.FAILURE_TYPES:
            raise errors.InvalidRequest(
                f"error_types[{index}]: {kind!r} is not a failure type; use any of: "
                + ", ".join(rerun.FAILURE_TYPES),
                param=f"error_types[{index}]",
                code="invalid_value",
            )
    return parsed.error_types
