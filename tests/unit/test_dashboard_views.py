"""What the dashboard computes and prints: progress and ETA, failed requests
grouped by message, and its number formats."""

from __future__ import annotations

import dataclasses

from batchgate.api.ui import format
from batchgate.domain import progress
from batchgate.domain.batch import Batch, ResultRow
from batchgate.domain.counts import StateTally
from batchgate.domain.failures import ErrorType, RequestError
from batchgate.domain.states import BatchStatus, RequestState
from tests.contract import builders

S = RequestState


def batch(by_state: dict[RequestState, int], **changes: object) -> Batch:
    made = builders.new_batch(sum(by_state.values()), created_at=1000.0)
    return dataclasses.replace(made, tally=StateTally(by_state=by_state), **changes)  # type: ignore[arg-type]


def test_eta_is_the_open_requests_at_the_rate_seen_so_far() -> None:
    running = batch({S.SUCCEEDED: 30, S.ERRORED: 10, S.QUEUED: 50, S.RUNNING: 10})
    seen = progress.of(running, now=1020.0)  # 40 done in 20 s: 2 per second
    assert seen.rate == 2.0
    assert seen.eta_seconds == 30.0  # 60 open
    assert seen.done == 40 and seen.percent_done == 40.0


def test_no_eta_before_anything_finished_nor_after_the_batch_ended() -> None:
    assert progress.of(batch({S.QUEUED: 5}), now=1010.0).eta_seconds is None
    ended = batch({S.SUCCEEDED: 5}, status=BatchStatus.COMPLETED, completed_at=1005.0)
    seen = progress.of(ended, now=5000.0)
    assert seen.eta_seconds is None
    assert seen.rate == 1.0  # measured up to the end, not up to now


def test_a_batch_that_ended_with_errors_says_how_many_in_a_warning_tone() -> None:
    def shown(by_state: dict[RequestState, int], status: BatchStatus) -> progress.Label:
        ended = batch(by_state, status=status, completed_at=1005.0)
        return progress.label(ended, progress.of(ended, now=1010.0))

    assert shown({S.SUCCEEDED: 5}, BatchStatus.COMPLETED) == progress.Label(
        "completed", "completed"
    )
    assert shown({S.ERRORED: 1}, BatchStatus.COMPLETED) == progress.Label(
        "completed · 1 errored", "completed-errors"
    )
    assert shown({S.SUCCEEDED: 3, S.ERRORED: 1200}, BatchStatus.COMPLETED).text == (
        "completed · 1,200 errored"
    )
    # Cancelled is cancelled, whatever its canceled requests count.
    assert shown({S.SUCCEEDED: 2, S.CANCELED: 30}, BatchStatus.CANCELLED) == progress.Label(
        "cancelled", "cancelled"
    )


def test_an_open_batch_is_queued_claimed_or_generating() -> None:
    def phase(by_state: dict[RequestState, int], generating: int = 0) -> str | None:
        made = builders.new_batch(sum(by_state.values()), created_at=1000.0)
        tally = StateTally(by_state=by_state, generating=generating)
        open_batch = dataclasses.replace(made, tally=tally)
        return progress.phase(open_batch, progress.of(open_batch, now=1001.0))

    assert phase({S.QUEUED: 30}) == "queued"
    assert phase({S.QUEUED: 20, S.RUNNING: 10}) == "claimed"  # leased, none started
    assert phase({S.QUEUED: 20, S.RUNNING: 10}, generating=2) == "generating"
    ended = batch({S.SUCCEEDED: 1}, status=BatchStatus.COMPLETED, completed_at=1005.0)
    assert progress.phase(ended, progress.of(ended, now=1010.0)) is None


def row(index: int, state: RequestState, message: str | None = None) -> ResultRow:
    error = RequestError(ErrorType.API, message) if message else None
    return ResultRow(index, f"r{index}", state, None, error, None)


def test_failed_requests_group_by_message_most_frequent_first() -> None:
    rows = [
        row(0, S.ERRORED, "too long"),
        row(1, S.SUCCEEDED),
        row(2, S.ERRORED, "bad temperature"),
        row(3, S.ERRORED, "too long"),
        row(4, S.CANCELED),
        row(5, S.ERRORED, "too long"),
        row(6, S.ERRORED, "too long"),
    ]
    groups = progress.group_errors(rows, max_examples=3)
    assert [(g.state, g.message, g.count) for g in groups] == [
        (S.ERRORED, "too long", 4),
        (S.ERRORED, "bad temperature", 1),
        (S.CANCELED, "canceled before it finished (the batch was cancelled)", 1),
    ]
    assert groups[0].examples == ("r0", "r3", "r5")


def test_small_costs_keep_their_digits() -> None:
    assert format.usd(0) == "$0"
    assert format.usd(0.000055) == "$0.000055"
    assert format.usd(0.0123) == "$0.0123"
    assert format.usd(1234.5) == "$1,234.50"
    assert format.usd(1e-9) == "< $0.000001"


def test_durations_read_as_a_person_says_them() -> None:
    assert format.duration(None) == format.UNKNOWN
    assert format.duration(42.4) == "42s"
    assert format.duration(75) == "1m 15s"
    assert format.duration(3 * 3600 + 120) == "3h 02m"
    assert format.duration(3 * 86400 + 3600) == "3d 1h"
