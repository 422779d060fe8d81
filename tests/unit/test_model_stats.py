"""Per-model figures derived from stored counts (domain/stats.py)."""

from __future__ import annotations

from batchgate.domain import stats
from batchgate.domain import upstream_jobs as uj
from batchgate.domain.states import RequestState


def test_throughput_is_recent_endings_per_second_of_the_window() -> None:
    entry = stats.ModelStats(
        model="m",
        by_state={},
        recent={RequestState.SUCCEEDED: 50, RequestState.CANCELED: 10},
        window_seconds=60,
    )
    assert entry.throughput == 1.0


def test_error_rate_leaves_out_requests_that_never_ran_to_an_end() -> None:
    entry = stats.ModelStats(
        model="m",
        by_state={},
        recent={RequestState.SUCCEEDED: 3, RequestState.ERRORED: 1, RequestState.EXPIRED: 6},
    )
    assert entry.error_rate == 0.25


def test_configured_models_without_requests_get_an_empty_entry_first() -> None:
    seen = [stats.ModelStats(model="zeta", by_state={RequestState.QUEUED: 1})]
    ordered = stats.for_models(seen, ["b", "zeta", "a"])
    assert [entry.model for entry in ordered] == ["b", "zeta", "a"]
    assert ordered[0].queued == 0 and ordered[1].queued == 1


def test_models_no_longer_configured_are_kept_after_the_configured_ones() -> None:
    seen = [stats.ModelStats(model="old", by_state={RequestState.SUCCEEDED: 4})]
    assert [entry.model for entry in stats.for_models(seen, ["new"])] == ["new", "old"]


def test_the_operator_pays_the_bill_on_the_batch_path_and_twice_it_on_the_realtime_one() -> None:
    batch_path = stats.PathCost("m", uj.Path.BATCH, requests=10, tenant_billed=0.5)
    realtime = stats.PathCost("m", uj.Path.REALTIME, requests=10, tenant_billed=0.5)
    assert (batch_path.operator_cost, batch_path.margin) == (0.5, 0.0)
    assert (realtime.operator_cost, realtime.margin) == (1.0, -0.5)
