"""Which rows a retry re-runs."""

from __future__ import annotations

import pytest

from batchgate.domain import failures, rerun
from batchgate.domain.states import RequestState


def row(state: RequestState, error_type: str | None = None) -> rerun.StoredRequest:
    error = (
        None if error_type is None else failures.RequestError(failures.ErrorType(error_type), "x")
    )
    return rerun.StoredRequest("c", "m", "{}", state, error)


@pytest.mark.parametrize("state", [RequestState.SUCCEEDED, RequestState.CANCELED])
def test_succeeded_and_cancelled_rows_are_never_retried(state: RequestState) -> None:
    assert not rerun.selected(row(state), None)


def test_without_a_filter_every_errored_and_expired_row_is_retried() -> None:
    assert rerun.selected(row(RequestState.ERRORED, "rate_limit_error"), None)
    assert rerun.selected(row(RequestState.EXPIRED), None)


def test_a_filter_matches_the_error_type_or_expired() -> None:
    types = {"rate_limit_error", rerun.EXPIRED}
    assert rerun.selected(row(RequestState.ERRORED, "rate_limit_error"), types)
    assert not rerun.selected(row(RequestState.ERRORED, "invalid_request_error"), types)
    assert rerun.selected(row(RequestState.EXPIRED), types)


def test_an_errored_row_without_a_recorded_type_counts_as_api_error() -> None:
    assert rerun.failure_type(row(RequestState.ERRORED)) == "api_error"


def test_the_child_keeps_the_parents_metadata_and_names_it() -> None:
    assert rerun.child_metadata("batch_1", {"run": "7"}) == {"run": "7", "retry_of": "batch_1"}
