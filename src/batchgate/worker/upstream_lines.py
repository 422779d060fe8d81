"""An upstream job's lines, both ways: the rows a job holds rendered into
the provider's input (refused and overflowing rows set apart), and the
provider's result lines turned into the outcomes the job writes back.

Pure functions: worker/upstream_jobs/ does the I/O around them. Encoding
is the CPU-heavy part of a job (every row parsed and rendered again), so the
driver runs :func:`encode` in a thread.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from batchgate import canonical, config
from batchgate.backends import base, capability
from batchgate.backends import provider_batch as pb
from batchgate.domain import batch as batch_model
from batchgate.domain import failures, retry
from batchgate.domain import upstream_jobs as uj
from batchgate.domain.states import RequestState


@dataclasses.dataclass(frozen=True)
class Encoded:
    """A job's input: ``lines`` (one per row of ``ids``, in order), the rows
    the upstream cannot carry with why (``refused``: they end errored), and
    the rows past the job's byte limit (``overflow``: back to the queue)."""

    lines: list[bytes]
    ids: list[int]
    refused: list[tuple[uj.HeldRequest, failures.RequestError]]
    overflow: list[uj.HeldRequest]

    @property
    def bytes(self) -> int:
        return sum(len(line) + 1 for line in self.lines)


def encode(backend: pb.ProviderBatchBackend, held: Sequence[uj.HeldRequest]) -> Encoded:
    """Render the rows a job holds, in order, until ``max_bytes`` (a line
    counts with its newline). A row past the limit, and every row after it,
    overflows; a single row larger than the limit is refused."""
    result = Encoded([], [], [], [])
    size = 0
    for row in held:
        if result.overflow:
            result.overflow.append(row)
            continue
        line = _line(backend, row)
        if isinstance(line, failures.RequestError):
            result.refused.append((row, line))
        elif len(line) + 1 > backend.limits.max_bytes:
            result.refused.append((row, _too_large(len(line) + 1, backend.limits.max_bytes)))
        elif size + len(line) + 1 > backend.limits.max_bytes:
            result.overflow.append(row)
        else:
            size += len(line) + 1
            result.lines.append(line)
            result.ids.append(row.id)
    return result


def _line(backend: pb.ProviderBatchBackend, row: uj.HeldRequest) -> bytes | failures.RequestError:
    try:
        request = canonical.load(row.params)
        capability.check(backend.model, backend.capabilities, request)
        return backend.codec.encode(row.id, request)
    except base.BackendError as exc:
        return exc.request_error()
    except Exception as exc:  # a bug in a codec fails its row, not the job
        return failures.RequestError(failures.ErrorType.API, f"internal error: {exc!r}")


def _too_large(size: int, limit: int) -> failures.RequestError:
    return failures.RequestError(
        failures.ErrorType.REQUEST_TOO_LARGE,
        f"this request is {size} bytes as an upstream batch line, over the upstream's "
        f"{limit}-byte limit for a whole batch",
        status_code=413,
    )


def refused_too_large(reason: str) -> failures.RequestError:
    """Why a row ends that the provider refused as too large on its own."""
    return failures.RequestError(
        failures.ErrorType.REQUEST_TOO_LARGE,
        f"the upstream refused a batch holding only this request as too large ({reason})",
        status_code=413,
    )


def ended(
    row: uj.HeldRequest,
    job_id: str,
    state: RequestState,
    error: failures.RequestError | None = None,
) -> batch_model.Outcome:
    """A row the job ends without a result (refused, errored), fenced on the job."""
    return batch_model.Outcome(
        request_id=row.id,
        attempt=row.attempt,
        worker_id=job_id,
        state=state,
        error=error,
        route=uj.Path.BATCH.value,
    )


def read(backend: pb.ProviderBatchBackend, line: pb.ResultLine, params: str) -> pb.LineResult:
    """A result line read against the request it answers (its stored
    params). A line the codec cannot read fails its row, not the job."""
    try:
        return backend.codec.decode(line, canonical.load(params))
    except Exception as exc:
        error = failures.RequestError(failures.ErrorType.API, f"internal error: {exc!r}")
        return pb.LineResult(line.request_id, error=error)


@dataclasses.dataclass
class Group:
    """A group of result lines read: what the rows the job holds get, and
    what the provider billed (``paid``), of it for rows it no longer holds
    (``dropped``: the operator's loss)."""

    outcomes: list[batch_model.Outcome] = dataclasses.field(default_factory=list)
    batch_ids: set[str] = dataclasses.field(default_factory=set)
    paid: float = 0.0
    dropped: float = 0.0


def read_group(
    job_id: str,
    backend: pb.ProviderBatchBackend,
    model: config.ModelConfig,
    policy: retry.RetryPolicy,
    lines: dict[int, pb.ResultLine],
    held: Sequence[uj.HeldRequest],
    gone_params: dict[int, str],
    now: float,
) -> Group:
    """Read one group of result ``lines`` (by request id): those of rows the
    job still holds (``held``) into outcomes, those of rows it no longer
    holds (their params in ``gone_params``) into their cost. A line the provider never ran
    (neither response nor error) leaves its row held: it is settled with the
    rows no line answered."""
    group = Group()
    for row in held:
        result = read(backend, lines[row.id], row.params)
        if result.response is None and result.error is None:
            continue
        written = outcome(result, row, job_id, model, policy, now)
        group.outcomes.append(written)
        group.batch_ids.add(row.batch_id)
        group.paid += written.cost
    for request_id, params in gone_params.items():
        usd = cost(read(backend, lines[request_id], params), model)
        group.paid += usd
        group.dropped += usd
    return group


def outcome(
    line: pb.LineResult,
    row: uj.HeldRequest,
    job_id: str,
    model: config.ModelConfig,
    policy: retry.RetryPolicy,
    now: float,
) -> batch_model.Outcome:
    """What one result line writes to the row it names: the response (the
    tenant's model name, tokens, cost at the batch price), or its error; a
    retryable error goes back to the queue while the retry policy allows."""
    if line.response is not None:
        # Tenants see the model name they asked for, not the upstream's.
        response = line.response.model_copy(update={"model": model.name})
        input_tokens, output_tokens, cached_tokens, reasoning_tokens = canonical.token_counts(
            response
        )
        return batch_model.Outcome(
            request_id=row.id,
            attempt=row.attempt,
            worker_id=job_id,
            state=RequestState.SUCCEEDED,
            result=response.model_dump(exclude_none=True),
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cached_tokens=cached_tokens,
            reasoning_tokens=reasoning_tokens,
            cost=model.batch_cost(input_tokens, output_tokens),
            route=uj.Path.BATCH.value,
        )
    error = line.error or failures.UNKNOWN_REQUEST_ERROR
    decision = policy.decide(retry.Failure(line.retryable), row.attempt)
    if isinstance(decision, retry.GiveUp):
        return ended(row, job_id, RequestState.ERRORED, error)
    # Queued again with its route unset: the next job takes it.
    return batch_model.Outcome(
        request_id=row.id,
        attempt=row.attempt,
        worker_id=job_id,
        state=RequestState.QUEUED,
        error=error,
        not_before=now + decision.delay,
        refund_attempt=decision.refund_attempt,
    )


def cost(line: pb.LineResult, model: config.ModelConfig) -> float:
    """What the provider bills for a line: its usage at the batch price
    (an error line has none)."""
    if line.response is None:
        return 0.0
    input_tokens, output_tokens, _, _ = canonical.token_counts(line.response)
    return model.batch_cost(input_tokens, output_tokens)
