"""The shipped FakeBackend does what its script says, and keeps count."""

from __future__ import annotations

import asyncio
import math

import pytest

from batchgate import testing
from batchgate.backends import base
from batchgate.canonical import chat, embeddings
from batchgate.domain.states import RequestKind


def request(text: str = "hello") -> chat.ChatRequest:
    return chat.ChatRequest.model_validate(
        {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": text}]}
    )


def test_the_default_handler_echoes_the_last_message() -> None:
    backend = testing.FakeBackend()
    response = asyncio.run(backend.complete(request("ping")))
    assert response.text() == "ping"
    assert backend.requests == [request("ping")]


def test_a_sequence_answers_in_order_and_repeats_its_last_step() -> None:
    backend = testing.FakeBackend(testing.sequence(testing.unavailable(), testing.reply("ok")))

    async def three_calls() -> list[str]:
        outcomes = []
        for _ in range(3):
            try:
                outcomes.append((await backend.complete(request())).text())
            except base.BackendError as exc:
                outcomes.append(f"error {exc.status_code}")
        return outcomes

    assert asyncio.run(three_calls()) == ["error 503", "ok", "ok"]


def test_an_async_handler_can_hold_calls_open_and_in_flight_is_counted() -> None:
    async def scenario() -> int:
        release = asyncio.Event()

        async def held(_request: chat.ChatRequest) -> chat.ChatResponse:
            await release.wait()
            return testing.reply()

        backend = testing.FakeBackend(held)
        calls = [asyncio.create_task(backend.complete(request())) for _ in range(3)]
        await asyncio.sleep(0)
        assert backend.in_flight == 3
        release.set()
        await asyncio.gather(*calls)
        return backend.max_in_flight

    assert asyncio.run(scenario()) == 3


def test_a_sequence_needs_a_step() -> None:
    with pytest.raises(ValueError, match="at least one step"):
        testing.sequence()


def embed_request(*texts: str, dimensions: int | None = None) -> embeddings.EmbeddingRequest:
    return embeddings.EmbeddingRequest(model="m", input=list(texts), dimensions=dimensions)


def test_a_chat_only_backend_declares_chat_only() -> None:
    assert testing.FakeBackend().capabilities.serves == {RequestKind.CHAT}


def test_embed_echo_gives_one_unit_vector_per_input_the_same_for_the_same_text() -> None:
    backend = testing.FakeBackend(embed=testing.embed_echo)
    response = asyncio.run(backend.embed(embed_request("a cat", "a dog", "a cat", dimensions=4)))
    first, second, third = response.vectors
    assert first == third != second and len(first) == 4
    assert math.isclose(sum(x * x for x in first), 1.0)
    assert response.usage.input_tokens == 6  # one per word
    assert backend.capabilities.serves == {RequestKind.CHAT, RequestKind.EMBEDDINGS}
    assert backend.embedding_requests == [embed_request("a cat", "a dog", "a cat", dimensions=4)]
    assert backend.requests == []  # chat calls are counted apart


def test_an_embed_sequence_answers_in_order() -> None:
    backend = testing.FakeBackend(
        embed=testing.sequence(testing.overloaded(retry_after=1.0), testing.embedding([[1.0]]))
    )

    async def two_calls() -> list[object]:
        outcomes: list[object] = []
        for _ in range(2):
            try:
                outcomes.append((await backend.embed(embed_request("x"))).vectors)
            except base.BackendError as exc:
                outcomes.append(exc.status_code)
        return outcomes

    assert asyncio.run(two_calls()) == [429, [[1.0]]]


def test_embed_without_a_handler_is_refused_as_unsupported() -> None:
    with pytest.raises(base.UnsupportedRequest, match="no embed handler"):
        asyncio.run(testing.FakeBackend().embed(embed_request("x")))
