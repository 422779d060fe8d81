"""What went wrong, as stored: one request's failure (on its row) and one
problem with a batch's input (in the batch's ``errors``).

Both are kept as JSON in the store; ``to_json`` / ``from_json`` are the only
mapping, so the stored shape is stated once.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

# A bad line's message is cut here: errors are stored per bad line, and a
# file may have many.
MAX_INPUT_ERROR_MESSAGE = 500
# The line errors a failed batch keeps in its batch object (with the count
# of all); ``GET /v1/batches/{id}/errors`` lists every one.
MAX_KEPT_LINE_ERRORS = 100


class ErrorType(enum.StrEnum):
    """Error types in Anthropic's vocabulary (OpenAI's result lines reuse
    them as ``error.type``)."""

    INVALID_REQUEST = "invalid_request_error"
    AUTHENTICATION = "authentication_error"
    BILLING = "billing_error"
    PERMISSION = "permission_error"
    NOT_FOUND = "not_found_error"
    REQUEST_TOO_LARGE = "request_too_large"
    RATE_LIMIT = "rate_limit_error"
    TIMEOUT = "timeout_error"
    API = "api_error"
    OVERLOADED = "overloaded_error"

    @classmethod
    def parse(cls, value: object) -> ErrorType:
        """A stored type; anything unknown reads as a generic ``api_error``."""
        try:
            return cls(str(value))
        except ValueError:
            return cls.API


@dataclasses.dataclass(frozen=True)
class RequestError:
    """Why one request failed (or why its last attempt did, while it waits
    to be retried). ``status_code`` is the upstream's HTTP status, if any."""

    type: ErrorType
    message: str
    status_code: int | None = None
    code: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.type.value, "message": self.message}
        if self.status_code is not None:
            data["status_code"] = self.status_code
        if self.code is not None:
            data["code"] = self.code
        return data

    @classmethod
    def from_json(cls, data: Any) -> RequestError:
        if not isinstance(data, dict):
            return UNKNOWN_REQUEST_ERROR
        status = data.get("status_code")
        code = data.get("code")
        return cls(
            type=ErrorType.parse(data.get("type")),
            message=str(data.get("message") or "the request failed"),
            status_code=status if isinstance(status, int) else None,
            code=code if isinstance(code, str) else None,
        )


# What an errored request without a recorded error reports.
UNKNOWN_REQUEST_ERROR = RequestError(ErrorType.API, "the request failed")


def lost_lease(attempt: int) -> RequestError:
    """Why a request ends whose worker vanished during its last attempt."""
    return RequestError(
        ErrorType.API,
        f"the worker running this request stopped responding during its last attempt "
        f"(attempt {attempt}); the worker lost the request",
    )


@dataclasses.dataclass(frozen=True)
class InputError:
    """One problem with a batch's input, in OpenAI's ``errors.data[]`` shape.
    ``line`` is 1-based, counting blank lines too; None for the whole file."""

    line: int | None
    code: str
    message: str
    param: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message[:MAX_INPUT_ERROR_MESSAGE],
            "line": self.line,
            "param": self.param,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InputError:
        return cls(
            line=data.get("line"),
            code=str(data.get("code")),
            message=str(data.get("message")),
            param=data.get("param"),
        )
