"""How HTTP backends report failures: one classification for every upstream.

The worker owns the only retry loop; this module only decides what a failed
call means. Retryable: 408, 409, 429, 500, 502, 503, 504, 529, timeouts and
broken connections. Final: every other status, with the upstream's own status
and message so the client sees why. 429 and 529 also say "the whole model is
overloaded" so the worker can slow down for every request, not just this one.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Mapping
from typing import Any

import aiohttp

from batchgate.backends import base
from batchgate.domain.failures import ErrorType

RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
OVERLOADED_STATUSES = frozenset({429, 529})

# Error types in Anthropic's vocabulary, which the dialects render.
_ERROR_TYPES = {
    400: ErrorType.INVALID_REQUEST,
    401: ErrorType.AUTHENTICATION,
    402: ErrorType.BILLING,
    403: ErrorType.PERMISSION,
    404: ErrorType.NOT_FOUND,
    408: ErrorType.TIMEOUT,
    413: ErrorType.REQUEST_TOO_LARGE,
    422: ErrorType.INVALID_REQUEST,
    429: ErrorType.RATE_LIMIT,
    529: ErrorType.OVERLOADED,
}

_MAX_MESSAGE_CHARS = 1000


def is_retryable_status(status_code: int) -> bool:
    return status_code in RETRYABLE_STATUSES


def error_type_for_status(status_code: int) -> ErrorType:
    if status_code in _ERROR_TYPES:
        return _ERROR_TYPES[status_code]
    return ErrorType.INVALID_REQUEST if 400 <= status_code < 500 else ErrorType.API


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """The upstream's wait hint in seconds, or None.

    ``retry-after-ms`` (OpenAI, Anthropic) is preferred for its precision;
    ``Retry-After`` may be seconds or an HTTP-date (RFC 9110). Negative or
    unparsable values are ignored rather than trusted.
    """
    lowered = {key.lower(): value for key, value in headers.items()}
    millis = _non_negative_float(lowered.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000.0
    raw = lowered.get("retry-after")
    if raw is None:
        return None
    seconds = _non_negative_float(raw)
    if seconds is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(raw.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # HTTP-dates are GMT by definition
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def _non_negative_float(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    if number != number or number < 0 or number == float("inf"):  # NaN, negative, inf
        return None
    return number


def upstream_message(body: bytes, *, fallback: str) -> str:
    """The human-readable message in an error body.

    OpenAI and Anthropic both nest it at ``error.message``; some servers put a
    bare string in ``error``, ``message`` or ``detail``; otherwise the raw text.
    """
    try:
        parsed: Any = json.loads(body)
    except ValueError:
        text = body.decode("utf-8", "replace").strip()
        return text[:_MAX_MESSAGE_CHARS] or fallback
    candidates: list[Any] = []
    if isinstance(parsed, dict):
        error = parsed.get("error")
        if isinstance(error, dict):
            candidates.append(error.get("message"))
        candidates += [error, parsed.get("message"), parsed.get("detail")]
    for candidate in candidates:
        if isinstance(candidate, str) and candidate:
            return candidate[:_MAX_MESSAGE_CHARS]
    return fallback


def error_field(body: bytes, field: str) -> str | None:
    """A string field of an error body's ``error`` object: OpenAI's
    ``error.code``, Anthropic's ``error.type`` (None if absent)."""
    try:
        parsed: Any = json.loads(body)
    except ValueError:
        return None
    error = parsed.get("error") if isinstance(parsed, dict) else None
    value = error.get(field) if isinstance(error, dict) else None
    return value if isinstance(value, str) else None


def error_from_status(
    status_code: int, headers: Mapping[str, str], body: bytes
) -> base.BackendError:
    """A BackendError for an HTTP error response (pure: no client types)."""
    message = upstream_message(body, fallback=f"HTTP {status_code}")
    return base.BackendError(
        f"upstream returned HTTP {status_code}: {message}",
        retryable=is_retryable_status(status_code),
        status_code=status_code,
        error_type=error_type_for_status(status_code),
        retry_after=parse_retry_after(headers),
        overloaded=status_code in OVERLOADED_STATUSES,
    )


def error_from_exception(exc: BaseException) -> base.BackendError:
    """A BackendError for a call that got no usable response.

    Timeouts and broken connections are worth another try; a malformed URL
    will fail the same way every time.
    """
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return base.BackendError(
            f"upstream timed out ({type(exc).__name__})",
            retryable=True,
            error_type=ErrorType.TIMEOUT,
        )
    if isinstance(exc, aiohttp.InvalidURL | aiohttp.TooManyRedirects):
        return base.BackendError(f"cannot call upstream: {exc}", retryable=False)
    if isinstance(exc, aiohttp.ClientConnectionError | aiohttp.ClientPayloadError | OSError):
        detail = str(exc) or type(exc).__name__
        return base.BackendError(f"upstream connection failed: {detail}", retryable=True)
    return base.BackendError(f"upstream call failed: {exc!r}", retryable=False)
