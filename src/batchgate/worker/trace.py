"""Each request's lifecycle in the log, findable by batch id and custom_id:
claimed, then one line per attempt (succeeded, errored, retried with its
cause, handed back, lost). Logger ``batchgate.requests`` at INFO; set it to
WARNING to keep only what went wrong. Never the prompt, the answer or a key;
of an upstream error, its type and status, and its message only with
``--log-error-messages`` (servers may quote the input in it).
"""

from __future__ import annotations

import logging

from batchgate import logs
from batchgate.domain import batch as batch_model
from batchgate.domain.batch import ClaimedRequest
from batchgate.metrics import worker as worker_metrics

log = logging.getLogger("batchgate.requests")

# Upstream error messages are kept short: they explain, they are not a dump.
_MESSAGE_CHARS = 200


def claimed(request: ClaimedRequest, worker_id: str) -> None:
    if not log.isEnabledFor(logging.INFO):
        return
    log.info(
        "claimed %s/%s attempt %d",
        request.batch_id,
        request.custom_id,
        request.attempt,
        extra={
            "event": "claimed",
            "batch_id": request.batch_id,
            "custom_id": request.custom_id,
            "request_id": request.id,
            "model": request.model,
            "attempt": request.attempt,
            "worker_id": worker_id,
        },
    )


def attempt_ended(
    request: ClaimedRequest, outcome: batch_model.Outcome, applied: bool, seconds: float
) -> None:
    kind = worker_metrics.classify(outcome, applied)
    failed = kind in (worker_metrics.AttemptOutcome.ERRORED, worker_metrics.AttemptOutcome.LOST)
    level = logging.WARNING if failed else logging.INFO
    if not log.isEnabledFor(level):
        return
    fields: dict[str, object] = {
        "event": kind.value,
        "batch_id": request.batch_id,
        "custom_id": request.custom_id,
        "request_id": request.id,
        "model": request.model,
        "attempt": request.attempt,
        "worker_id": outcome.worker_id,
        "duration_ms": round(seconds * 1000, 1),
    }
    detail = ""
    if kind is worker_metrics.AttemptOutcome.SUCCEEDED:
        fields.update(input_tokens=outcome.input_tokens, output_tokens=outcome.output_tokens)
    elif kind is worker_metrics.AttemptOutcome.RETRIED:
        cause = worker_metrics.retry_cause(outcome.error)
        fields.update(cause=cause, not_before=outcome.not_before)
        detail = f" ({cause})"
    if outcome.error is not None and kind is not worker_metrics.AttemptOutcome.LOST:
        fields.update(error_type=outcome.error.type.value, status_code=outcome.error.status_code)
        if logs.error_messages():
            fields.update(error_message=outcome.error.message[:_MESSAGE_CHARS])
        if kind is worker_metrics.AttemptOutcome.ERRORED:
            detail = f" ({outcome.error.type.value})"
    log.log(
        level,
        "%s %s/%s attempt %d%s",
        kind.value,
        request.batch_id,
        request.custom_id,
        request.attempt,
        detail,
        extra=fields,
    )


def batches_ended(batch_ids: list[str], how: str) -> None:
    for batch_id in batch_ids:
        log.info(
            "batch %s %s", batch_id, how, extra={"event": f"batch_{how}", "batch_id": batch_id}
        )
