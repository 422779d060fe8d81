"""One exception handler per dialect, chosen by the route's path: a domain
error's kind becomes an HTTP status and the dialect's own error envelope.
The domain names what went wrong; only this module knows HTTP."""

from __future__ import annotations

import logging
import math
from typing import Any

import fastapi
import fastapi.exceptions
import starlette.exceptions
import starlette.requests

from batchgate.api.common import JsonResponse
from batchgate.domain import errors, estimate

# The HTTP status of each kind of domain error, the same on every dialect's
# path (each dialect's envelope then names it in its own words, below).
HTTP_STATUS = {
    errors.ErrorKind.INTERNAL: 500,
    errors.ErrorKind.INVALID_REQUEST: 400,
    errors.ErrorKind.UNAUTHORIZED: 401,
    errors.ErrorKind.FORBIDDEN: 403,
    errors.ErrorKind.NOT_FOUND: 404,
    errors.ErrorKind.CONFLICT: 409,
    errors.ErrorKind.PAYLOAD_TOO_LARGE: 413,
    errors.ErrorKind.QUOTA_EXCEEDED: 429,
    errors.ErrorKind.RATE_LIMITED: 429,
}
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
log = logging.getLogger("batchgate.api")

_OPENAI_TYPES = {401: "authentication_error", 404: "invalid_request_error", 500: "server_error"}


def http_status(exc: errors.BatchgateError) -> int:
    return HTTP_STATUS[exc.kind]


def render_estimate(figures: estimate.Estimate) -> dict[str, Any]:
    """A dry run's answer: a quota refusal is shown as create would answer
    it (its status and the OpenAI envelope's fields), not raised."""
    refused = figures.refusal
    if refused is None:
        return estimate.render(figures.models)
    status = http_status(refused)
    fields = openai_envelope(status, refused.message, refused.param, refused.code, refused.limit)
    return estimate.render(figures.models, {"status": status, **fields["error"]})


def openai_envelope(
    status: int,
    message: str,
    param: str | None,
    code: str | None,
    openai_type: str | None = None,
) -> dict[str, Any]:
    return {
        "error": {
            "message": message,
            "type": openai_type or _OPENAI_TYPES.get(status, "invalid_request_error"),
            "param": param,
            "code": code,
        }
    }


def anthropic_envelope(status: int, message: str) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"type": _ANTHROPIC_TYPES.get(status, "api_error"), "message": message},
    }


def _render(
    request: fastapi.Request,
    status: int,
    message: str,
    param: str | None,
    code: str | None,
    openai_type: str | None = None,
    retry_after: float | None = None,
) -> JsonResponse:
    if request.url.path.startswith("/v1/messages"):
        body = anthropic_envelope(status, message)
    else:
        body = openai_envelope(status, message, param, code, openai_type)
    headers: dict[str, str] = {}
    if status == 401:
        headers["www-authenticate"] = "Bearer"
    if retry_after is not None:
        headers["retry-after"] = str(max(1, math.ceil(retry_after)))
    return JsonResponse(body, status_code=status, headers=headers or None)


def install(app: fastapi.FastAPI) -> None:
    @app.exception_handler(errors.BatchgateError)
    async def _domain(request: fastapi.Request, exc: errors.BatchgateError) -> JsonResponse:
        return _render(
            request,
            http_status(exc),
            exc.message,
            exc.param,
            exc.code,
            exc.limit,
            exc.retry_after,
        )

    @app.exception_handler(starlette.requests.ClientDisconnect)
    async def _disconnect(request: fastapi.Request, _exc: Exception) -> fastapi.Response:
        # Nobody is left to answer, and a client going away is not a server
        # fault: one line, no traceback.
        client = request.client.host if request.client else "a client"
        log.info(
            "%s disconnected during the request body of %s %s",
            client,
            request.method,
            request.url.path,
        )
        return fastapi.Response(status_code=400)

    @app.exception_handler(fastapi.exceptions.RequestValidationError)
    async def _validation(
        request: fastapi.Request, exc: fastapi.exceptions.RequestValidationError
    ) -> JsonResponse:
        first = exc.errors()[0]
        loc = ".".join(str(part) for part in first["loc"][1:])
        return _render(
            request,
            400,
            f"{loc}: {first['msg']}" if loc else first["msg"],
            loc or None,
            "invalid_request",
        )

    @app.exception_handler(starlette.exceptions.HTTPException)
    async def _http(
        request: fastapi.Request, exc: starlette.exceptions.HTTPException
    ) -> JsonResponse:
        message = str(exc.detail)
        if exc.status_code == 404:
            message = f"no route for {request.method} {request.url.path}"
        elif exc.status_code == 405:
            message = f"method {request.method} not allowed on {request.url.path}"
        return _render(request, exc.status_code, message, None, None)
