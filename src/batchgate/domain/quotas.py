"""Admission: whether a key may add a batch or a file, given its quotas and
what it already holds. Pure; the store runs :func:`check` inside the
transaction that would store the new work, after locking the key's row, so
two API processes cannot both admit past a limit."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from batchgate.domain import errors
from batchgate.domain.keys import KeyQuotas


@dataclasses.dataclass(frozen=True)
class Demand:
    """What the new work adds."""

    tokens: Mapping[str, int] = dataclasses.field(default_factory=dict)  # model -> input tokens
    requests: int = 0
    batches: int = 0
    bytes: int = 0


@dataclasses.dataclass(frozen=True)
class Usage:
    """What the key holds now (only the parts its limits need are filled)."""

    enqueued_tokens: Mapping[str, int] = dataclasses.field(default_factory=dict)
    active_batches: int = 0
    stored_bytes: int = 0


@dataclasses.dataclass(frozen=True)
class Admission:
    """A demand, and the configured ``[quotas]`` the key's own quotas override."""

    demand: Demand
    defaults: KeyQuotas = dataclasses.field(default_factory=KeyQuotas)


_AFTER_BATCHES_END = "Please try again once some in_progress batches have been completed."


def needs_tokens(limits: KeyQuotas, demand: Demand) -> list[str]:
    """The models whose enqueued-token usage must be read to decide."""
    return sorted(model for model in demand.tokens if model in limits.max_enqueued_tokens)


def check(key_id: str, limits: KeyQuotas, usage: Usage, demand: Demand) -> None:
    """Raise if adding ``demand`` to ``usage`` passes one of ``limits``."""
    if demand.requests:
        check_size(demand.requests, limits.max_requests_per_batch, key_id)
    limit = limits.max_active_batches
    if demand.batches and limit is not None and usage.active_batches + demand.batches > limit:
        raise errors.QuotaExceeded(
            f"Active batch limit reached on API key {key_id}. Limit: {limit:,} batches "
            f"in progress. {_AFTER_BATCHES_END}",
            code="batch_limit_exceeded",
        )
    for model in needs_tokens(limits, demand):
        limit = limits.max_enqueued_tokens[model]
        held = usage.enqueued_tokens.get(model, 0)
        wanted = demand.tokens[model]
        if held + wanted > limit:
            raise _token_limit(
                key_id,
                model,
                limit,
                f"This batch holds {wanted:,} input tokens for {model}; "
                f"{held:,} are already enqueued.",
            )
    limit = limits.max_file_bytes
    if demand.bytes and limit is not None and usage.stored_bytes + demand.bytes > limit:
        raise errors.QuotaExceeded(
            f"Stored file limit reached on API key {key_id}. Limit: {limit:,} bytes of "
            f"files; {usage.stored_bytes:,} are stored and this file has "
            f"{demand.bytes:,}. Delete files you no longer need (DELETE /v1/files/{{id}}).",
            code="storage_limit_exceeded",
        )


def check_size(requests: int, limit: int | None, key_id: str | None = None) -> None:
    """Raise if a batch of ``requests`` is over ``limit``: the server-wide
    one, or with ``key_id`` that key's own."""
    if limit is None or requests <= limit:
        return
    # A size limit, not a quota over time: waiting never clears it, and SDKs
    # retry a 429, so it is a 413 whichever limit it is.
    on_key = "" if key_id is None else f" on API key {key_id}"
    raise errors.PayloadTooLarge(
        f"a batch{on_key} may hold at most {limit:,} requests; this one has {requests:,}",
        param="requests",
        code="batch_too_large",
    )


def covers_every_model(limits: KeyQuotas, served: Sequence[str]) -> bool:
    """Whether ``limits`` caps the enqueued tokens of every served model:
    only then can a key be full everywhere (and its usage is worth reading)."""
    return bool(served) and all(model in limits.max_enqueued_tokens for model in served)


def refuse_when_full(
    key_id: str, limits: KeyQuotas, enqueued: Mapping[str, int], served: Sequence[str]
) -> None:
    """Before a create body is parsed: a key whose token quota is used up on
    every model this server serves cannot have a request queued, so it is
    refused without the cost of parsing (a client resubmitting while over
    its quota must not slow the others down)."""
    if not covers_every_model(limits, served):
        return
    if all(enqueued.get(model, 0) >= limits.max_enqueued_tokens[model] for model in served):
        model = sorted(served)[0]
        raise _token_limit(
            key_id,
            model,
            limits.max_enqueued_tokens[model],
            f"{enqueued.get(model, 0):,} are already enqueued on every model this key may use.",
        )


def _token_limit(key_id: str, model: str, limit: int, figures: str) -> errors.QuotaExceeded:
    # OpenAI's wording for the same refusal, then the figures.
    return errors.QuotaExceeded(
        f"Enqueued token limit reached for {model} on API key {key_id}. "
        f"Limit: {limit:,} enqueued tokens. {_AFTER_BATCHES_END} ({figures})",
        code="token_limit_exceeded",
        limit="tokens",
    )
