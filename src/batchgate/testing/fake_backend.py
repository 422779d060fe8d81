"""A scriptable Backend, in the spirit of httpx's ``MockTransport``: every
call goes to a handler you supply, which returns the reply or raises the
failure (a :class:`~batchgate.backends.base.BackendError`) you want the worker
to see. The backend records what it was asked and how many calls it had in
flight at once.

    backend = FakeBackend(sequence(overloaded(retry_after=2.0), reply("hi")))

Given an ``embed`` handler it serves embeddings too (:func:`embed_echo`, or
:func:`sequence` of :func:`embedding` replies and failures):

    backend = FakeBackend(embed=sequence(unavailable(), embedding([[1.0, 0.0]])))

Handlers may be plain functions or coroutines (await an ``asyncio.Event`` to
hold calls open, e.g. to test a drain or a lease lost mid-call).
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import itertools
import math
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from batchgate.backends import base
from batchgate.canonical import chat, embeddings
from batchgate.domain.failures import ErrorType
from batchgate.domain.states import RequestKind

Handler = Callable[[chat.ChatRequest], chat.ChatResponse | Awaitable[chat.ChatResponse]]
EmbedHandler = Callable[
    [embeddings.EmbeddingRequest],
    embeddings.EmbeddingResponse | Awaitable[embeddings.EmbeddingResponse],
]
Reply = TypeVar("Reply")

# Everything the canonical request can ask for; narrow it to test refusals.
ALL_CAPABILITIES = base.Capabilities(tools=True, images=True, thinking=True, stop_sequences=True)

_ids = itertools.count(1)


def reply(
    text: str = "ok", *, model: str = "fake", input_tokens: int = 1, output_tokens: int = 1
) -> chat.ChatResponse:
    """A finished assistant reply of ``text``."""
    return chat.ChatResponse(
        id=f"msg_fake{next(_ids)}",
        model=model,
        content=[chat.TextBlock(text=text)],
        stop_reason="end_turn",
        usage=chat.Usage(input_tokens=input_tokens, output_tokens=output_tokens),
    )


def echo(request: chat.ChatRequest) -> chat.ChatResponse:
    """The default handler: replies with the text of the last message."""
    last = request.messages[-1].blocks() if request.messages else []
    text = "".join(block.text for block in last if isinstance(block, chat.TextBlock))
    return reply(text, model=request.model)


def embedding(
    vectors: list[list[float]], *, model: str = "fake", input_tokens: int = 1
) -> embeddings.EmbeddingResponse:
    """An embeddings reply carrying ``vectors`` (one per input, in order)."""
    return embeddings.EmbeddingResponse(
        model=model, vectors=vectors, usage=embeddings.EmbeddingUsage(input_tokens=input_tokens)
    )


def vector_for(item: str | list[int], dimensions: int = 8) -> list[float]:
    """A unit vector that depends only on the input: the same text always
    embeds the same, different texts (almost surely) differently."""
    seed = item.encode() if isinstance(item, str) else repr(item).encode()
    digest = hashlib.sha256(seed).digest()
    raw = [digest[i % len(digest)] - 127.5 for i in range(dimensions)]
    norm = math.sqrt(sum(x * x for x in raw))
    return [x / norm for x in raw]


def embed_echo(request: embeddings.EmbeddingRequest) -> embeddings.EmbeddingResponse:
    """The usual embed handler: :func:`vector_for` each input (at the
    requested ``dimensions``, else 8), one token per word or token id."""
    dimensions = request.dimensions or 8
    tokens = sum(
        len(item) if isinstance(item, list) else len(item.split()) for item in request.input
    )
    return embedding(
        [vector_for(item, dimensions) for item in request.input],
        model=request.model,
        input_tokens=tokens,
    )


def unavailable(*, retry_after: float | None = None) -> base.BackendError:
    """A retryable failure (a 503): the worker should try again later."""
    return base.BackendError(
        "upstream returned HTTP 503: unavailable",
        retryable=True,
        status_code=503,
        retry_after=retry_after,
    )


def overloaded(*, retry_after: float | None = None) -> base.BackendError:
    """A 429: retryable, and a signal for the whole model to slow down."""
    return base.BackendError(
        "upstream returned HTTP 429: slow down",
        retryable=True,
        status_code=429,
        error_type=ErrorType.RATE_LIMIT,
        retry_after=retry_after,
        overloaded=True,
    )


def rejected(message: str = "bad request") -> base.BackendError:
    """A final failure (a 400): the request errors at once."""
    return base.BackendError(
        f"upstream returned HTTP 400: {message}",
        retryable=False,
        status_code=400,
        error_type=ErrorType.INVALID_REQUEST,
    )


def sequence(*steps: Reply | BaseException) -> Callable[[Any], Reply]:
    """A handler that answers call N with step N (a reply, or an exception to
    raise); the last step answers every call after it. Chat replies make a
    ``complete`` handler, :func:`embedding` replies an ``embed`` one."""
    if not steps:
        raise ValueError("sequence() needs at least one step")
    calls = itertools.count()

    def handle(_request: object) -> Reply:
        step = steps[min(next(calls), len(steps) - 1)]
        if isinstance(step, BaseException):
            raise step
        return step

    return handle


class FakeBackend:
    """A :class:`~batchgate.backends.base.Backend` that calls ``handler``
    for chat and, when given, ``embed`` for embeddings (then it declares
    that it serves them)."""

    def __init__(
        self,
        handler: Handler = echo,
        *,
        embed: EmbedHandler | None = None,
        capabilities: base.Capabilities = ALL_CAPABILITIES,
    ) -> None:
        self.handler = handler
        self.embed_handler = embed
        if embed is not None:
            served = capabilities.serves | {RequestKind.EMBEDDINGS}
            capabilities = dataclasses.replace(capabilities, serves=served)
        self.capabilities = capabilities
        self.requests: list[chat.ChatRequest] = []
        self.embedding_requests: list[embeddings.EmbeddingRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.closed = False

    async def complete(self, request: chat.ChatRequest) -> chat.ChatResponse:
        self.requests.append(request)
        return await self._call(lambda: self.handler(request))

    async def embed(self, request: embeddings.EmbeddingRequest) -> embeddings.EmbeddingResponse:
        handler = self.embed_handler
        if handler is None:  # the capability check keeps the worker from this
            raise base.UnsupportedRequest("this FakeBackend was given no embed handler")
        self.embedding_requests.append(request)
        return await self._call(lambda: handler(request))

    async def _call(self, call: Callable[[], Reply | Awaitable[Reply]]) -> Reply:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            answer = call()
            if inspect.isawaitable(answer):
                return await answer
            return answer
        finally:
            self.in_flight -= 1

    async def aclose(self) -> None:
        self.closed = True
