"""Provider batch APIs as a backend kind: ``openai_batch`` (any server that
speaks OpenAI's Files + Batch API: OpenAI, Azure-style deployments, another
batchgate) and ``anthropic_batch`` (Anthropic's Message Batches API).

Such a model is not served one call per request. The worker's upstream-job
driver (worker/upstream_jobs/) packs its queued rows into jobs
(domain/upstream_jobs.py), and talks to the provider through the
:class:`BatchClient` here; :class:`LineCodec` turns a canonical request into
its upstream line and an upstream result line back into an outcome. A model
entry may also name a real-time upstream (``realtime = {backend = ...}``):
rows whose tenant window runs short go there (the deadline fallback), which
is why the backend object still has ``complete``.

This module holds the ports; ``client_openai.py``, ``client_anthropic.py``,
``codec.py`` and ``options.py`` implement them; ``create`` builds the backend.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol

from batchgate import canonical
from batchgate.backends import base
from batchgate.domain import failures
from batchgate.domain import upstream_jobs as uj


class JobTooLarge(base.BackendError):
    """The provider refused a job as too large (OpenAI's
    ``token_limit_exceeded``, Anthropic's ``request_too_large`` or a 413):
    the driver splits it and sends smaller jobs."""

    def __init__(self, message: str, *, reason: str = "token_limit_exceeded") -> None:
        super().__init__(message, retryable=True, status_code=None)
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class UpstreamBatch:
    """A provider's batch as last read."""

    id: str
    status: str  # the provider's own word ("in_progress", "ended", ...)
    end_status: uj.EndStatus | None  # None while it is open
    created_at: float
    output_file_id: str | None = None
    error_file_id: str | None = None
    request_total: int | None = None
    # The provider refused the job as too large after accepting it (an
    # OpenAI batch that ends ``failed`` with ``token_limit_exceeded``).
    refusal: str | None = None
    # Another failure the provider gave for the whole batch, for the job's
    # last_error.
    error: str | None = None
    job_id: str | None = None  # the job the batch's metadata names, if any


@dataclasses.dataclass(frozen=True)
class ResultLine:
    """One of our lines in a provider's results, parsed but not yet read: the
    codec reads it against its row's request, as the real-time readers do
    (they need it: a request's stop sequences decide a finish reason, an
    embeddings reply must cover the request's inputs)."""

    request_id: int
    data: dict[str, Any]  # the whole line as the provider sent it


@dataclasses.dataclass(frozen=True)
class LineResult:
    """One upstream result line, read back: the row's response, or its error
    (``retryable``: a 429/5xx inside the line, worth another job)."""

    request_id: int
    response: canonical.Response | None = None
    error: failures.RequestError | None = None
    retryable: bool = False


class LineCodec(Protocol):
    """Turns requests into upstream lines and result lines into outcomes."""

    def encode(self, request_id: int, request: canonical.Request) -> bytes:
        """The request's upstream entry as one JSON object (no newline),
        ``custom_id`` = ``uj.upstream_custom_id(request_id)``. Raises
        ``base.UnsupportedRequest`` for a request the endpoint cannot carry."""
        ...

    def decode(self, line: ResultLine, request: canonical.Request) -> LineResult:
        """A result line read against the request it answers (the row's
        stored params). Neither response nor error: the provider never ran
        the row (expired, cancelled), so it is still unfinished."""
        ...


class BatchClient(Protocol):
    """A provider's batch API. Every call raises ``base.BackendError`` on an
    HTTP failure (``retryable`` for 429, 5xx, timeouts, resets)."""

    kind: str
    # OpenAI uploads a file first (the job passes through ``uploaded``);
    # Anthropic carries the requests in the create call.
    uploads_file: bool
    # Anthropic's batches carry no metadata: ``find_batch`` tells a lost
    # create's batch by creation time and size, which only one unresolved
    # create of the kind at a time keeps unambiguous (the driver begins a
    # create through ``UpstreamJobStore.start_create`` then).
    matches_by_time: bool

    async def find_file(self, job: uj.UpstreamJob) -> str | None:
        """After a crash: the id of a file already uploaded for ``job``
        (its name is ``uj.job_marker(job.id)``), or None."""
        ...

    async def upload(self, job: uj.UpstreamJob, lines: Sequence[bytes]) -> str:
        """Upload the job's input; the file's id."""
        ...

    async def find_batch(self, job: uj.UpstreamJob, recorded: set[str]) -> UpstreamBatch | None:
        """After a crash: the provider's batch already created for ``job``,
        or None. OpenAI: its metadata names the job. Anthropic (no
        metadata): a batch created since ``job.create_started_at`` (less a
        minute of clock skew) with ``job.request_count`` requests whose id is
        not in ``recorded`` (ids other jobs hold)."""
        ...

    async def create(self, job: uj.UpstreamJob, lines: Sequence[bytes]) -> UpstreamBatch:
        """Create the provider's batch (OpenAI: from ``job.upstream_file_id``,
        ``lines`` unused; Anthropic: ``lines`` are the requests). Raises
        :class:`JobTooLarge` when the provider refuses it as too large."""
        ...

    async def get(self, batch_id: str) -> UpstreamBatch: ...

    async def cancel(self, batch_id: str) -> UpstreamBatch: ...

    def results(self, batch: UpstreamBatch) -> AsyncIterator[ResultLine]:
        """Every result line of an ended batch (output, then error file),
        parsed as it streams; lines not ours are skipped. The driver reads
        them with ``LineCodec.decode`` against the rows' requests, loaded a
        chunk of lines at a time (a job's file is never held in memory)."""
        ...

    async def delete_upstream(self, job: uj.UpstreamJob) -> None:
        """Delete what the provider keeps for a done job, whose results are
        in the store now: OpenAI's input, output and error files (they count
        against the operator's file storage), unless the entry keeps them.
        An Anthropic Message Batch is kept: it takes no storage of the
        operator's, the provider drops its results after 29 days, and it is
        the operator's record to check the provider's bill against. An
        object already gone counts as deleted; if a delete fails the others
        are still tried, then ``base.BackendError`` is raised."""
        ...

    async def aclose(self) -> None: ...


class NoRealtimePath(base.BackendError):
    def __init__(self, model: str) -> None:
        super().__init__(
            f"model {model!r} is served through a provider batch API and names no "
            "real-time upstream",
            retryable=False,
        )


@dataclasses.dataclass
class ProviderBatchBackend:
    """What the registry builds for ``openai_batch`` / ``anthropic_batch``.
    The worker sees it (``isinstance``) and runs an upstream-job driver for
    the model; ``complete``/``embed`` serve only rows that fell back to the
    real-time upstream, if the entry names one."""

    model: str
    kind: str
    endpoint: str  # the upstream endpoint of every line ("/v1/chat/completions", ...)
    client: BatchClient
    codec: LineCodec
    limits: uj.Limits
    capabilities: base.Capabilities
    realtime: base.Backend | None = None

    async def complete(self, request: canonical.chat.ChatRequest) -> canonical.chat.ChatResponse:
        if self.realtime is None:
            raise NoRealtimePath(self.model)
        return await self.realtime.complete(request)

    async def embed(
        self, request: canonical.embeddings.EmbeddingRequest
    ) -> canonical.embeddings.EmbeddingResponse:
        if not isinstance(self.realtime, base.EmbeddingBackend):
            raise NoRealtimePath(self.model)
        return await self.realtime.embed(request)

    async def aclose(self) -> None:
        await self.client.aclose()
        if self.realtime is not None:
            await self.realtime.aclose()
