"""Input tokens counted at submit time match what the engine then reports."""

from __future__ import annotations

import asyncio

import pytest

from batchgate import config
from batchgate.backends import llama_cpp as engine_backend
from batchgate.backends import tokens as token_count
from batchgate.canonical import chat, embeddings

pytestmark = pytest.mark.slow


def test_the_embedded_model_count_is_the_engines_own_prompt_length() -> None:
    model = config.ModelConfig(name="m", backend="llama_cpp", n_parallel=2, n_ctx=512)
    requests = [
        chat.ChatRequest(
            model="m",
            max_tokens=1,
            system="Be brief. " * 7,
            messages=[chat.Message(role="user", content="Grüße! Name three colours, é ü.")],
        ),
        chat.ChatRequest(
            model="m",
            max_tokens=1,
            messages=[
                chat.Message(role="user", content="Hi"),
                chat.Message(role="assistant", content="Hello."),
                chat.Message(role="user", content="x" * 300),
            ],
        ),
    ]
    counter = token_count.TokenCounter({"m": model})
    backend = engine_backend.create(model)

    async def reported() -> list[int]:
        try:
            return [(await backend.complete(r)).usage.input_tokens for r in requests]
        finally:
            await backend.aclose()

    assert [counter.count(r) for r in requests] == asyncio.run(reported())


def test_the_embedded_model_embedding_count_is_the_engines_own() -> None:
    model = config.ModelConfig(name="m", backend="llama_cpp", n_parallel=2, n_ctx=512)
    requests = [
        embeddings.EmbeddingRequest(model="m", input=["Grüße! é ü", "x" * 300, "<|im_end|>"]),
        embeddings.EmbeddingRequest(model="m", input=[[1, 2, 3], [4, 5]]),
    ]
    counter = token_count.TokenCounter({"m": model})
    backend = engine_backend.create(model)

    async def reported() -> list[int]:
        try:
            return [(await backend.embed(r)).usage.input_tokens for r in requests]
        finally:
            await backend.aclose()

    measured = [counter.measure(r) for r in requests]
    assert all(exact for _, exact in measured)
    assert [tokens for tokens, _ in measured] == asyncio.run(reported())
