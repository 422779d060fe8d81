"""Domain errors. Each dialect's exception handler renders them in its own
error envelope; nothing below the API layer knows about HTTP."""

from __future__ import annotations


class BatchgateError(Exception):
    status_code = 500
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code


class InvalidRequest(BatchgateError):
    status_code = 400
    code = "invalid_request"


class Unauthorized(BatchgateError):
    status_code = 401
    code = "invalid_api_key"


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
