"""Result lines in Anthropic's Message Batches shape, shared by the native and
Anthropic dialects: ``{"custom_id", "result": {"type": ..., ...}}``."""

from __future__ import annotations

from typing import Any

from batchgate.canonical import chat
from batchgate.domain import failures
from batchgate.domain.batch import ResultRow
from batchgate.domain.states import RequestState

# A batchgate extension on the result lines of every dialect: the path that
# served a provider-batch model's row ("batch": the provider's batch API;
# "realtime": the deadline fallback). Absent on every other model's lines,
# which stay byte for byte what they were.
SERVED_BY = "served_by"


def result_line(row: ResultRow) -> dict[str, Any]:
    return with_served_by({"custom_id": row.custom_id, "result": _result(row)}, row)


def with_served_by(line: dict[str, Any], row: ResultRow) -> dict[str, Any]:
    """``line`` with the path that served the row, where one did (every
    dialect's result line carries the same extension)."""
    served_by = row.served_by
    if served_by is not None:
        line[SERVED_BY] = served_by
    return line


def _result(row: ResultRow) -> dict[str, Any]:
    result: dict[str, Any]
    if row.state is RequestState.SUCCEEDED and row.result is not None:
        message = chat.ChatResponse.model_validate(row.result).to_message()
        result = {"type": "succeeded", "message": message}
    elif row.state is RequestState.ERRORED:
        error = row.error or failures.UNKNOWN_REQUEST_ERROR
        result = {
            "type": "errored",
            "error": {
                "type": "error",
                "error": {"type": error.type.value, "message": error.message},
            },
        }
    elif row.state is RequestState.EXPIRED:
        result = {"type": "expired"}
    else:
        # canceled, or (only while a batch is still running) not yet finished
        result = {"type": "canceled"}
    return result
