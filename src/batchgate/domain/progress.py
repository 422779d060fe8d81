"""How far along a batch is, and when it should end: what a person watching
it wants to know (the dashboard and ``batchgate status``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from batchgate.domain.batch import Batch, ResultRow
from batchgate.domain.states import BatchStatus, RequestState


@dataclasses.dataclass(frozen=True)
class Progress:
    total: int
    succeeded: int
    errored: int
    canceled: int
    expired: int
    running: int  # claimed + generating
    queued: int
    # Requests per second since the batch started, None before any finished.
    rate: float | None
    # Seconds until the open requests are done at that rate; None when the
    # batch has ended or nothing has finished yet to measure a rate by.
    eta_seconds: float | None
    # Of ``running``: leased by a worker, waiting for a call slot (claimed),
    # and with the backend call under way (generating).
    claimed: int = 0
    generating: int = 0

    @property
    def done(self) -> int:
        return self.succeeded + self.errored + self.canceled + self.expired

    def percent(self, count: int) -> float:
        """``count`` as a percentage of the batch (0 for an empty batch)."""
        return 100.0 * count / self.total if self.total else 0.0

    @property
    def percent_done(self) -> float:
        # An ended batch with no requests (failed validation) is not "0 % done".
        return self.percent(self.done) if self.total else 100.0


@dataclasses.dataclass(frozen=True)
class Label:
    """What a batch's badge says, and its tone: the API status, except that
    an ended batch with errored requests says how many, in a warning tone
    rather than a success one."""

    text: str
    tone: str


def label(batch: Batch, seen: Progress) -> Label:
    status = batch.status
    text = status.value.replace("_", " ")
    if status is BatchStatus.COMPLETED and seen.errored:
        return Label(f"{text} · {seen.errored:,} errored", "completed-errors")
    return Label(text, status.value)


def phase(batch: Batch, seen: Progress) -> str | None:
    """Where an unfinished batch's open requests are: ``generating`` once a
    backend is working on one, ``claimed`` while a worker holds some but has
    not started them, ``queued`` while none is claimed; None once ended."""
    if batch.status is not BatchStatus.IN_PROGRESS:
        return None
    if seen.generating:
        return "generating"
    if seen.claimed:
        return "claimed"
    return "queued" if seen.queued else None


def of(batch: Batch, now: float) -> Progress:
    tally = batch.tally
    done = tally.total - tally.open
    started = batch.in_progress_at or batch.created_at
    elapsed = (batch.ended_at or now) - started
    rate = done / elapsed if done and elapsed > 0 else None
    eta = None
    if not batch.status.is_ended and rate:
        eta = tally.open / rate
    return Progress(
        total=max(batch.total, tally.total),
        succeeded=tally.count(RequestState.SUCCEEDED),
        errored=tally.count(RequestState.ERRORED),
        canceled=tally.count(RequestState.CANCELED),
        expired=tally.count(RequestState.EXPIRED),
        running=tally.count(RequestState.RUNNING),
        queued=tally.count(RequestState.QUEUED),
        rate=rate,
        eta_seconds=eta,
        claimed=tally.claimed,
        generating=min(tally.generating, tally.count(RequestState.RUNNING)),
    )


# -- errors, grouped by message ----------------------------------------------
_NO_RESULT_MESSAGES = {
    RequestState.CANCELED: "canceled before it finished (the batch was cancelled)",
    RequestState.EXPIRED: "not run before the batch's completion window ended",
}


@dataclasses.dataclass(frozen=True)
class ErrorGroup:
    state: RequestState
    message: str
    count: int
    # A few custom_ids that failed this way, to look up in the results.
    examples: tuple[str, ...]


def group_errors(rows: Iterable[ResultRow], max_examples: int = 3) -> list[ErrorGroup]:
    """Failed requests grouped by what went wrong, most frequent first.
    Memory grows with the number of distinct messages, not of rows."""
    counts: dict[tuple[RequestState, str], int] = {}
    examples: dict[tuple[RequestState, str], list[str]] = {}
    for row in rows:
        if row.state is RequestState.ERRORED:
            message = row.error.message if row.error else "the request failed"
        elif row.state in _NO_RESULT_MESSAGES:
            message = _NO_RESULT_MESSAGES[row.state]
        else:
            continue
        key = (row.state, message)
        counts[key] = counts.get(key, 0) + 1
        seen = examples.setdefault(key, [])
        if len(seen) < max_examples:
            seen.append(row.custom_id)
    groups = [
        ErrorGroup(state, message, count, tuple(examples[(state, message)]))
        for (state, message), count in counts.items()
    ]
    return sorted(groups, key=lambda group: (-group.count, group.message))


FAILED_STATES = (RequestState.ERRORED, RequestState.CANCELED, RequestState.EXPIRED)
