"""Domain errors. Each dialect's exception handler renders them in its own
error envelope; nothing below the API layer knows about HTTP."""

from __future__ import annotations


class BatchgateError(Exception):
    status_code = 500
    code: str | None = None
    # The OpenAI envelope's ``type``; None: the one usual for the status.
    openai_type: str | None = None
    # Seconds the client should wait before retrying (a Retry-After header).
    retry_after: float | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        openai_type: str | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        if openai_type is not None:
            self.openai_type = openai_type
        if retry_after is not None:
            self.retry_after = retry_after


class InvalidRequest(BatchgateError):
    status_code = 400
    code = "invalid_request"


class Unauthorized(BatchgateError):
    status_code = 401
    code = "invalid_api_key"


class Forbidden(BatchgateError):
    """Authenticated, but this key's scope does not allow the operation."""

    status_code = 403
    code = "insufficient_permissions"


class NotFound(BatchgateError):
    status_code = 404
    code = "not_found"


class Conflict(BatchgateError):
    """The object exists but is in the wrong state for this operation."""

    status_code = 409
    code = "conflict"


class PayloadTooLarge(BatchgateError):
    status_code = 413
    code = "payload_too_large"


class QuotaExceeded(BatchgateError):
    """Over a key's quota: retry once some of its work has ended."""

    status_code = 429
    code = "quota_exceeded"
    openai_type = "requests"


class RateLimited(BatchgateError):
    """Too many API calls from one key; ``retry_after`` says when to retry."""

    status_code = 429
    code = "rate_limit_exceeded"
    openai_type = "requests"
