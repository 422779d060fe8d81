"""The shipped FakeBackend does what its script says, and keeps count."""

from __future__ import annotations

import asyncio

import pytest

from batchgate import chat, testing
from batchgate.backends import base


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
