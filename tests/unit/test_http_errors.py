"""Classification of upstream HTTP failures into BackendError."""

from __future__ import annotations

import email.utils

import aiohttp
import pytest

from batchgate.backends import http_errors


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504, 529])
def test_transient_statuses_are_retryable(status: int) -> None:
    assert http_errors.error_from_status(status, {}, b"").retryable


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422, 501])
def test_other_statuses_are_final(status: int) -> None:
    assert not http_errors.error_from_status(status, {}, b"").retryable


@pytest.mark.parametrize(("status", "overloaded"), [(429, True), (529, True), (503, False)])
def test_only_429_and_529_mark_the_model_overloaded(status: int, overloaded: bool) -> None:
    assert http_errors.error_from_status(status, {}, b"").overloaded is overloaded


def test_final_error_keeps_the_upstream_status_and_message() -> None:
    body = b'{"error": {"message": "max_tokens is too large", "type": "invalid_request_error"}}'
    error = http_errors.error_from_status(400, {}, body)
    assert error.status_code == 400
    assert error.error_type == "invalid_request_error"
    assert "max_tokens is too large" in error.message


def test_non_json_error_body_is_quoted_as_text() -> None:
    error = http_errors.error_from_status(502, {}, b"<html>Bad Gateway</html>")
    assert "<html>Bad Gateway</html>" in error.message


def test_retry_after_seconds_are_parsed() -> None:
    assert http_errors.parse_retry_after({"Retry-After": "7"}) == 7.0


def test_retry_after_ms_wins_over_retry_after() -> None:
    assert http_errors.parse_retry_after({"retry-after": "7", "retry-after-ms": "1500"}) == 1.5


def test_retry_after_http_date_is_seconds_from_now() -> None:
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert http_errors.parse_retry_after({"retry-after": date}, now=now) == 30.0


def test_retry_after_date_in_the_past_is_zero() -> None:
    now = 1_700_000_000.0
    date = email.utils.formatdate(now - 30, usegmt=True)
    assert http_errors.parse_retry_after({"retry-after": date}, now=now) == 0.0


@pytest.mark.parametrize("value", ["soon", "-5", "nan", ""])
def test_unparsable_retry_after_is_ignored(value: str) -> None:
    assert http_errors.parse_retry_after({"retry-after": value}) is None


def test_error_carries_the_retry_after_hint() -> None:
    error = http_errors.error_from_status(429, {"retry-after": "3"}, b"")
    assert error.retry_after == 3.0


@pytest.mark.parametrize("exc", [TimeoutError(), aiohttp.ServerTimeoutError("slow")])
def test_timeouts_are_retryable(exc: BaseException) -> None:
    error = http_errors.error_from_exception(exc)
    assert error.retryable and error.error_type == "timeout_error"


@pytest.mark.parametrize(
    "exc",
    [
        aiohttp.ServerDisconnectedError(),
        aiohttp.ClientOSError(104, "Connection reset by peer"),
        ConnectionRefusedError(111, "refused"),
        aiohttp.ClientPayloadError("cut off"),
    ],
)
def test_broken_connections_are_retryable(exc: BaseException) -> None:
    assert http_errors.error_from_exception(exc).retryable


def test_malformed_url_is_final() -> None:
    assert not http_errors.error_from_exception(aiohttp.InvalidURL("nope://")).retryable
