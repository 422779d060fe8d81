"""Domain errors. Each carries a ``kind`` (what went wrong); each dialect's
exception handler in ``api/`` maps the kind to an HTTP status and its own
error envelope, so nothing below the API layer knows about HTTP."""

from __future__ import annotations

import enum
from typing import Literal

# Which limit a refusal is about: the number of calls or requests, or tokens.
Limit = Literal["requests", "tokens"]


class ErrorKind(enum.Enum):
    INTERNAL = "internal"
    INVALID_REQUEST = "invalid_request"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    QUOTA_EXCEEDED = "quota_exceeded"
    RATE_LIMITED = "rate_limited"


class BatchgateError(Exception):
    kind = ErrorKind.INTERNAL
    code: str | None = None
    # For a refusal over a limit: which one (the OpenAI envelope's ``type``).
    limit: Limit | None = None
    # Seconds the client should wait before retrying (a Retry-After header).
    retry_after: float | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        limit: Limit | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        if limit is not None:
            self.limit = limit
        if retry_after is not None:
            self.retry_after = retry_after


class InvalidRequest(BatchgateError):
    kind = ErrorKind.INVALID_REQUEST
    code = "invalid_request"


class Unauthorized(BatchgateError):
    kind = ErrorKind.UNAUTHORIZED
    code = "invalid_api_key"


class Forbidden(BatchgateError):
    """Authenticated, but this key's scope does not allow the operation."""

    kind = ErrorKind.FORBIDDEN
    code = "insufficient_permissions"


class NotFound(BatchgateError):
    kind = ErrorKind.NOT_FOUND
    code = "not_found"


class Conflict(BatchgateError):
    """The object exists but is in the wrong state for this operation."""

    kind = ErrorKind.CONFLICT
    code = "conflict"


class PayloadTooLarge(BatchgateError):
    kind = ErrorKind.PAYLOAD_TOO_LARGE
    code = "payload_too_large"


class QuotaExceeded(BatchgateError):
    """Over a key's quota: retry once some of its work has ended."""

    kind = ErrorKind.QUOTA_EXCEEDED
    code = "quota_exceeded"
    limit: Limit | None = "requests"


class RateLimited(BatchgateError):
    """Too many API calls from one key; ``retry_after`` says when to retry."""

    kind = ErrorKind.RATE_LIMITED
    code = "rate_limit_exceeded"
    limit: Limit | None = "requests"
