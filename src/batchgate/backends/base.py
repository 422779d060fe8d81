"""The Backend port: one method that turns a chat request into a chat response.

Backends are transports. They do not retry (the worker owns the one retry
loop), they do not know wire dialects, and they report failures as
:class:`BackendError` so the worker can decide what happens next.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol, runtime_checkable

from batchgate.canonical import chat, embeddings
from batchgate.domain import failures
from batchgate.domain.states import RequestKind


@dataclasses.dataclass(frozen=True)
class Capabilities:
    """What a backend can honour. Params it cannot honour error the request."""

    tools: bool = False
    images: bool = False
    # Reads PDF documents (Anthropic ``document`` blocks with a base64 or url
    # source). Text documents need nothing: every backend takes them as text.
    pdfs: bool = False
    thinking: bool = False
    stop_sequences: bool = True
    max_context: int | None = None
    # The kinds of request this backend answers; embeddings need ``embed``.
    serves: frozenset[RequestKind] = frozenset({RequestKind.CHAT})


class BackendError(Exception):
    """A failed call.

    ``retryable`` says whether trying again later may succeed (429, 5xx,
    timeouts, resets); ``retry_after`` is the upstream's own hint in seconds
    (``Retry-After`` / ``retry-after-ms``), never to be undercut.
    ``overloaded`` marks a signal that the whole model should back off (429/529).
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status_code: int | None = None,
        error_type: failures.ErrorType = failures.ErrorType.API,
        retry_after: float | None = None,
        overloaded: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.status_code = status_code
        self.error_type = error_type
        self.retry_after = retry_after
        self.overloaded = overloaded

    def request_error(self) -> failures.RequestError:
        """What the failed request records (and its result line shows)."""
        return failures.RequestError(self.error_type, self.message, status_code=self.status_code)


class UnsupportedRequest(BackendError):
    """The request asks for something this backend cannot honour (final)."""

    def __init__(self, message: str) -> None:
        super().__init__(
            message, retryable=False, status_code=400, error_type=failures.ErrorType.INVALID_REQUEST
        )


@runtime_checkable
class Backend(Protocol):
    """A model backend. ``complete`` may be called concurrently up to the
    model's concurrency cap; ``aclose`` releases connections or engines."""

    capabilities: Capabilities

    async def complete(self, request: chat.ChatRequest) -> chat.ChatResponse: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class EmbeddingBackend(Protocol):
    """A backend that also serves embeddings (``RequestKind.EMBEDDINGS`` in
    its ``capabilities.serves``)."""

    async def embed(self, request: embeddings.EmbeddingRequest) -> embeddings.EmbeddingResponse: ...
