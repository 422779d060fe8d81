"""Domain errors name what went wrong; the API maps each kind to its HTTP
status and each dialect's envelope type."""

from __future__ import annotations

import pytest

from batchgate.api import errors as api_errors
from batchgate.domain import errors


def test_every_kind_of_domain_error_has_an_http_status() -> None:
    assert set(api_errors.HTTP_STATUS) == set(errors.ErrorKind)


@pytest.mark.parametrize(
    ("error", "status", "anthropic_type"),
    [
        (errors.InvalidRequest("x"), 400, "invalid_request_error"),
        (errors.Unauthorized("x"), 401, "authentication_error"),
        (errors.Forbidden("x"), 403, "permission_error"),
        (errors.NotFound("x"), 404, "not_found_error"),
        (errors.Conflict("x"), 409, "invalid_request_error"),
        (errors.PayloadTooLarge("x"), 413, "request_too_large"),
        (errors.QuotaExceeded("x"), 429, "rate_limit_error"),
        (errors.RateLimited("x"), 429, "rate_limit_error"),
        (errors.BatchgateError("x"), 500, "api_error"),
    ],
)
def test_each_error_is_answered_with_its_status_in_each_envelope(
    error: errors.BatchgateError, status: int, anthropic_type: str
) -> None:
    assert api_errors.http_status(error) == status
    assert api_errors.anthropic_envelope(status, "x")["error"]["type"] == anthropic_type


def test_a_refusal_over_a_limit_names_the_limit_as_openais_envelope_type() -> None:
    refused = errors.QuotaExceeded("over", code="token_limit_exceeded", limit="tokens")
    envelope = api_errors.openai_envelope(
        api_errors.http_status(refused), refused.message, None, refused.code, refused.limit
    )
    assert envelope["error"]["type"] == "tokens"


def test_domain_errors_carry_no_http_status() -> None:
    assert not any(hasattr(cls, "status_code") for cls in _error_classes())


def _error_classes() -> list[type[errors.BatchgateError]]:
    return [errors.BatchgateError, *errors.BatchgateError.__subclasses__()]
