"""A scriptable Backend, in the spirit of httpx's ``MockTransport``: every
call goes to a handler you supply, which returns the reply or raises the
failure (a :class:`~batchgate.backends.base.BackendError`) you want the worker
to see. The backend records what it was asked and how many calls it had in
flight at once.

    backend = FakeBackend(sequence(overloaded(retry_after=2.0), reply("hi")))

Handlers may be plain functions or coroutines (await an ``asyncio.Event`` to
hold calls open, e.g. to test a drain or a lease lost mid-call).
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Awaitable, Callable

from batchgate import chat
from batchgate.backends import base
from batchgate.domain.failures import ErrorType

Handler = Callable[[chat.ChatRequest], chat.ChatResponse | Awaitable[chat.ChatResponse]]

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


def sequence(*steps: chat.ChatResponse | BaseException) -> Handler:
    """A handler that answers call N with step N (a reply, or an exception to
    raise); the last step answers every call after it."""
    if not steps:
        raise ValueError("sequence() needs at least one step")
    calls = itertools.count()

    def handle(_request: chat.ChatRequest) -> chat.ChatResponse:
        step = steps[min(next(calls), len(steps) - 1)]
        if isinstance(step, BaseException):
            raise step
        return step

    return handle


class FakeBackend:
    """A :class:`~batchgate.backends.base.Backend` that calls ``handler``."""

    def __init__(
        self, handler: Handler = echo, *, capabilities: base.Capabilities = ALL_CAPABILITIES
    ) -> None:
        self.handler = handler
        self.capabilities = capabilities
        self.requests: list[chat.ChatRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.closed = False

    async def complete(self, request: chat.ChatRequest) -> chat.ChatResponse:
        self.requests.append(request)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            answer = self.handler(request)
            if inspect.isawaitable(answer):
                return await answer
            return answer
        finally:
            self.in_flight -= 1

    async def aclose(self) -> None:
        self.closed = True
