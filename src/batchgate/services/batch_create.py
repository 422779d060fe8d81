"""Creating a batch, in every dialect: the checks at submit (input limits,
the capability check, size and quotas) and storing the batch with its
requests, each admitted (queued, or born errored) as it is stored.
Re-running an ended batch's failed rows builds on it (services/rerun.py);
reading, cancelling and deleting batches is services/batches.py."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Protocol

from batchgate import canonical, config
from batchgate.backends import base, capability, registry
from batchgate.backends import tokens as token_count
from batchgate.dialects import input_limits, native
from batchgate.domain import batch as batch_model
from batchgate.domain import errors, failures, ids, quotas, retention
from batchgate.domain import files as file_model
from batchgate.domain import keys as key_model
from batchgate.domain.states import BatchStatus, Dialect, RequestState
from batchgate.store import port

log = logging.getLogger("batchgate.batches")


def logged(batch: batch_model.Batch, event: str) -> batch_model.Batch:
    """Log a batch's creation or cancellation (ids and counts, no content)."""
    log.info(
        "batch %s %s (%d requests, %s)",
        batch.id,
        event,
        batch.total,
        batch.status.value,
        extra={
            "event": f"batch_{event}",
            "batch_id": batch.id,
            "owner": batch.owner,
            "dialect": batch.dialect.value,
            "total": batch.total,
            "status": batch.status.value,
        },
    )
    return batch


class CreationStore(port.BatchStore, port.FileStore, port.BatchSweeps, Protocol):
    """The roles creating a batch uses: batches, their input files, and
    finalizing a batch whose every request ended at submit."""


@dataclasses.dataclass(frozen=True)
class ParsedRequest:
    custom_id: str
    request: canonical.Request


def declared_capabilities(
    models: Mapping[str, config.ModelConfig], backends: Mapping[str, base.Backend] | None = None
) -> dict[str, base.Capabilities]:
    """What each model's backend can serve, for the capability check at
    submit: a backend this process built (``backends``) says it itself;
    otherwise its settings declare it (registry.capabilities, plugins
    included). A model whose plugin declares nothing is absent: only the
    worker, which builds it, can check its requests."""
    built = backends or {}
    declared: dict[str, base.Capabilities] = {}
    for name, entry in models.items():
        if name in built:
            declared[name] = capability.declared(built[name])
        elif (capabilities := registry.capabilities(entry)) is not None:
            declared[name] = capabilities
        else:
            log.warning(
                "backend %r of model %r declares no capabilities: its requests are checked "
                "only when a worker runs them (give its entry point a capabilities() hook)",
                entry.backend,
                name,
            )
    return declared


@dataclasses.dataclass(frozen=True)
class BatchSettings:
    """The settings creating batches reads: the served models, the input
    limits, the default quotas, the completion window and how long results
    and inline input files are kept."""

    models: Mapping[str, config.ModelConfig]
    limits: config.LimitsSettings
    quotas: config.QuotaSettings
    retention: config.RetentionSettings
    completion_window_seconds: int

    @classmethod
    def of(cls, settings: config.Settings) -> BatchSettings:
        return cls(
            models=settings.models,
            limits=settings.limits,
            quotas=settings.quotas,
            retention=settings.retention,
            completion_window_seconds=settings.completion_window_seconds,
        )


class BatchCreation:
    def __init__(
        self,
        store: CreationStore,
        settings: BatchSettings,
        tokens: token_count.TokenCounter | None = None,
        capabilities: Mapping[str, base.Capabilities] | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.tokens = tokens or token_count.TokenCounter(settings.models)
        self.input_limits = input_limits.InputLimits(
            max_messages=settings.limits.max_messages,
            max_string_chars=settings.limits.max_string_chars,
            max_json_depth=settings.limits.max_json_depth,
        )
        # Model -> what its backend serves (see declared_capabilities).
        self.capabilities = (
            declared_capabilities(settings.models) if capabilities is None else capabilities
        )

    def check_inputs(self, requests: Sequence[ParsedRequest], *, anthropic: bool) -> None:
        """The named input limits, for inline requests (``requests[i]...``)."""
        for index, item in enumerate(requests):
            input_limits.check_custom_id(
                item.custom_id, f"requests[{index}].custom_id", anthropic=anthropic
            )
            path = f"requests[{index}].params"
            input_limits.check_request(item.request, self.input_limits, path)
            self.check_ranges(item.request, path)

    def refusal(self, request: canonical.Request) -> capability.Refusal | None:
        """Why the model's backend cannot serve ``request`` (the one
        capability check, as the worker runs it again at dispatch)."""
        declared = self.capabilities.get(request.model)
        return None if declared is None else capability.refusal(declared, request)

    def check_ranges(self, request: canonical.Request, path: str) -> None:
        """A value the client chose outside its model's range (``max_tokens``
        above the context window) is an InvalidRequest naming ``path``.<field>;
        what the model lacks errors the request when stored (``admit``)."""
        refused = self.refusal(request)
        if refused is not None and refused.field is not None:
            param = f"{path}.{refused.field}"
            raise errors.InvalidRequest(
                f"{param}: model {request.model!r} {refused.reason}",
                param=param,
                code=input_limits.INVALID_VALUE,
            )

    def admission(self, demand: quotas.Demand) -> quotas.Admission:
        """``demand`` against the configured quotas (a key's own override them)."""
        return quotas.Admission(demand, self.settings.quotas.defaults())

    def refuse_when_full(self, caller: key_model.ApiKey) -> None:
        """429 at once, before the body is parsed, for a key whose token
        quota is used up on every served model (see domain/quotas.py)."""
        limits = caller.quotas.over(self.settings.quotas.defaults())
        served = sorted(self.settings.models)
        if not quotas.covers_every_model(limits, served):
            return
        enqueued = self.store.enqueued_tokens(caller.id, served)
        quotas.refuse_when_full(caller.id, limits, enqueued, served)

    def token_demand(self, requests: Iterable[ParsedRequest]) -> dict[str, int]:
        """Input tokens per configured model (unknown models never queue)."""
        demand: dict[str, int] = {}
        for item in requests:
            self.add_tokens(demand, item.request)
        return demand

    def add_tokens(self, demand: dict[str, int], request: canonical.Request) -> None:
        # A request its model cannot serve is stored errored: it holds none.
        if request.model in self.settings.models and self.refusal(request) is None:
            demand[request.model] = demand.get(request.model, 0) + self.tokens.count(request)

    # -- create ---------------------------------------------------------------
    def check_size(self, count: int) -> None:
        """The server-wide size limit, before any request is looked at (a
        key's own limit is checked with its other quotas when storing)."""
        quotas.check_size(count, self.settings.limits.max_requests_per_batch)

    def create(
        self,
        *,
        owner: str,
        dialect: Dialect,
        endpoint: str,
        requests: Sequence[ParsedRequest],
        metadata: dict[str, str] | None = None,
        input_file_id: str | None = None,
        batch_id: str | None = None,
        input_file: tuple[file_model.FileRecord, Iterable[bytes]] | None = None,
    ) -> batch_model.Batch:
        self.check_size(len(requests))
        self.check_inputs(requests, anthropic=dialect is Dialect.ANTHROPIC)
        return self.create_streamed(
            owner=owner,
            dialect=dialect,
            endpoint=endpoint,
            total=len(requests),
            requests=requests,
            metadata=metadata,
            input_file_id=input_file_id,
            batch_id=batch_id,
            input_file=input_file,
        )

    def create_streamed(
        self,
        *,
        owner: str,
        dialect: Dialect,
        endpoint: str,
        total: int,
        requests: Iterable[ParsedRequest],
        metadata: dict[str, str] | None = None,
        input_file_id: str | None = None,
        batch_id: str | None = None,
        tokens: dict[str, int] | None = None,
        input_file: tuple[file_model.FileRecord, Iterable[bytes]] | None = None,
        output_expires_after: int | None = None,
    ) -> batch_model.Batch:
        """Create a batch from ``total`` already validated requests, consumed
        once, one at a time (a 50k-request file is never a list in memory).

        ``tokens`` (input tokens per model, counted beforehand) is checked
        against the owner's quotas in the transaction that stores the batch;
        a sequence of requests is counted here when it is not given.
        ``output_expires_after``: seconds its results are kept once it ends
        (None: the configured retention)."""
        if tokens is None:
            if not isinstance(requests, Sequence):
                raise TypeError("streamed requests need their token demand counted beforehand")
            tokens = self.token_demand(requests)
        now = time.time()
        batch = self.record(owner, dialect, endpoint, total, metadata, input_file_id, now)
        if output_expires_after is not None:
            batch = dataclasses.replace(batch, results_ttl=output_expires_after)
        if batch_id:
            batch = dataclasses.replace(batch, id=batch_id)
        demand = quotas.Demand(tokens=tokens, requests=total, batches=1)
        self.store.create_batch(
            batch, self._new_requests(requests, total), self.admission(demand), input_file
        )
        # A batch whose every request was born finished (unknown models) ends now.
        self.store.finalize_batches(now, [batch.id])
        return logged(self.stored(owner, batch.id), "created")

    def create_failed(
        self,
        *,
        owner: str,
        dialect: Dialect,
        endpoint: str,
        line_errors: list[failures.InputError],
        error_count: int | None = None,
        metadata: dict[str, str] | None = None,
        input_file_id: str | None = None,
        output_expires_after: int | None = None,
        model: str | None = None,
    ) -> batch_model.Batch:
        """Store a batch whose input failed validation: status ``failed``, no
        requests, the errors kept for the client to read (OpenAI's behaviour).
        ``model``: the one model its lines named, if they named one."""
        now = time.time()
        batch = self.record(owner, dialect, endpoint, 0, metadata, input_file_id, now)
        batch = dataclasses.replace(
            batch, model=model, error_count=max(error_count or 0, len(line_errors))
        )
        if output_expires_after is not None:
            batch = dataclasses.replace(batch, results_ttl=output_expires_after)
        self.store.fail_batch(batch, line_errors, now)
        return logged(self.stored(owner, batch.id), "created")

    def record(
        self,
        owner: str,
        dialect: Dialect,
        endpoint: str,
        total: int,
        metadata: dict[str, str] | None,
        input_file_id: str | None,
        now: float,
    ) -> batch_model.Batch:
        """A new batch's record (not yet stored): its id, window and retention."""
        window = self.settings.completion_window_seconds
        return batch_model.Batch(
            id=ids.new_batch_id(dialect),
            owner=owner,
            dialect=dialect,
            endpoint=endpoint,
            input_file_id=input_file_id,
            completion_window="24h" if window == 86400 else f"{window}s",
            metadata=metadata,
            status=BatchStatus.IN_PROGRESS,
            errors=None,
            total=total,
            created_at=now,
            expires_at=now + window,
            in_progress_at=now,
            results_ttl=config.RetentionSettings.ttl(self.settings.retention.results_seconds),
        )

    def _new_requests(
        self, requests: Iterable[ParsedRequest], total: int
    ) -> Iterator[batch_model.NewRequest]:
        return self.counted((self._new_request(item) for item in requests), total)

    @staticmethod
    def counted(
        requests: Iterable[batch_model.NewRequest], total: int
    ) -> Iterator[batch_model.NewRequest]:
        """``requests`` as they are stored, failing the batch's transaction
        unless there are exactly ``total`` of them."""
        count = 0
        for request in requests:
            count += 1
            yield request
        if count != total:
            # The source changed under us (an input file deleted mid-read):
            # raising here rolls the whole batch back.
            raise errors.Conflict(
                f"expected {total} requests but read {count}; the input changed while the "
                "batch was being created"
            )

    def _new_request(self, item: ParsedRequest) -> batch_model.NewRequest:
        return self.admit(
            item.custom_id, item.request.model, canonical.dump(item.request), lambda: item.request
        )

    def admit(
        self, custom_id: str, model: str, params: str, request: Callable[[], canonical.Request]
    ) -> batch_model.NewRequest:
        """A request to store; one for a model this server does not serve, or
        that its model cannot serve (the capability check), is born errored
        (the request's failure, not the batch's) with the message the worker
        would write. ``request``: the canonical request, read only for a
        served model; only queued requests hold input tokens."""
        if model not in self.settings.models:
            configured = ", ".join(sorted(self.settings.models)) or "(none)"
            return batch_model.NewRequest(
                custom_id=custom_id,
                model=model,
                params=params,
                state=RequestState.ERRORED,
                error=failures.RequestError(
                    failures.ErrorType.INVALID_REQUEST,
                    f"model {model!r} is not configured on this server; "
                    f"configured models: {configured}",
                ),
            )
        loaded = request()
        refused = self.refusal(loaded)
        if refused is not None:
            return batch_model.NewRequest(
                custom_id=custom_id,
                model=model,
                params=params,
                state=RequestState.ERRORED,
                error=refused.error(model).request_error(),
            )
        tokens = self.tokens.count(loaded)
        return batch_model.NewRequest(
            custom_id=custom_id, model=model, params=params, enqueued_tokens=tokens
        )

    def create_inline(
        self,
        owner: str,
        requests: Sequence[ParsedRequest],
        *,
        endpoint: str,
        metadata: dict[str, str] | None = None,
    ) -> tuple[batch_model.Batch, file_model.FileRecord]:
        """A native batch of inline requests, which are kept as its input
        file too; returns the batch and that file."""
        self.check_size(len(requests))
        input_file = self.inline_input_file(owner, requests)
        batch = self.create(
            owner=owner,
            dialect=Dialect.NATIVE,
            endpoint=endpoint,
            requests=requests,
            metadata=metadata,
            input_file_id=input_file[0].id,
            input_file=input_file,
        )
        stored = self.store.get_file(input_file[0].id, owner)
        assert stored is not None  # written in the batch's own transaction
        return batch, stored

    def inline_input_file(
        self, owner: str, requests: Sequence[ParsedRequest]
    ) -> tuple[file_model.FileRecord, Iterator[bytes]]:
        """Inline requests kept as an input file too, so every batch has one
        (``input_file_id``) and it can be downloaded like an uploaded one;
        stored in the batch's transaction (both or neither)."""
        now = time.time()
        record = file_model.FileRecord(
            id=ids.new_file_id(),
            owner=owner,
            purpose=file_model.FilePurpose.BATCH,
            filename="batch.jsonl",
            bytes=0,
            status=file_model.FileStatus.PROCESSED,
            created_at=now,
            expires_at=retention.expiry(now, self.settings.retention.file_ttl(None)),
        )
        return record, (native.input_line(item.custom_id, item.request) for item in requests)

    def stored(self, owner: str, batch_id: str) -> batch_model.Batch:
        """The batch just stored, as the store reads it back (a rerun's too)."""
        batch = self.store.get_batch(batch_id, owner)
        if batch is None:
            raise errors.NotFound(f"no batch with id {batch_id!r}", param="batch_id")
        return batch
