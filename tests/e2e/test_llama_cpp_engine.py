"""The embedded llama.cpp engine, end to end with the real SmolLM2 model."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import llama_cpp
import llama_cpp.llama_chat_format
import pytest

from batchgate import config
from batchgate.backends import base, capability
from batchgate.backends import llama_cpp as engine_backend
from batchgate.canonical import chat
from batchgate.wire.openai import completions

pytestmark = pytest.mark.slow

SYSTEM = " ".join(
    f"Guideline {i}: answer in plain English, be brief, and never mention guideline {i}."
    for i in range(1, 9)
)  # ~150 tokens shared by the prefix-sharing test


def _backend(**options: Any) -> engine_backend.LlamaCppBackend:
    backend = engine_backend.create(config.ModelConfig(name="m", backend="llama_cpp", **options))
    assert isinstance(backend, engine_backend.LlamaCppBackend)
    return backend


@pytest.fixture(scope="module")
def backend() -> Iterator[engine_backend.LlamaCppBackend]:
    backend = _backend(n_parallel=4, n_ctx=512)
    yield backend
    asyncio.run(backend.aclose())


def _request(content: str, **fields: Any) -> chat.ChatRequest:
    fields.setdefault("max_tokens", 16)
    fields.setdefault("temperature", 0.0)
    return chat.ChatRequest(
        model="m", messages=[chat.Message(role="user", content=content)], **fields
    )


async def test_greedy_output_is_deterministic(backend: engine_backend.LlamaCppBackend) -> None:
    request = _request("Name three colours.")
    first = await backend.complete(request)
    second = await backend.complete(request)
    assert first.text() != ""
    assert first.text() == second.text()


async def test_stop_sequence_stops_and_is_excluded(
    backend: engine_backend.LlamaCppBackend,
) -> None:
    full = (await backend.complete(_request("Describe the sea.", max_tokens=24))).text()
    stop = full[8:12]  # mid-reply, not aligned to token boundaries
    assert len(stop) == 4
    reply = await backend.complete(_request("Describe the sea.", stop_sequences=["@@", stop]))
    assert reply.stop_reason == "stop_sequence"
    assert reply.stop_sequence == stop
    assert reply.text() == full[: full.index(stop)]


async def test_max_tokens_ends_the_reply(backend: engine_backend.LlamaCppBackend) -> None:
    reply = await backend.complete(_request("Write a long essay about rivers.", max_tokens=5))
    assert reply.stop_reason == "max_tokens"
    assert reply.usage.output_tokens == 5


async def test_end_of_turn_is_reported(backend: engine_backend.LlamaCppBackend) -> None:
    reply = await backend.complete(_request("Reply with just the word yes.", max_tokens=32))
    assert reply.stop_reason == "end_turn"
    assert 0 < reply.usage.output_tokens < 32


async def test_input_tokens_is_the_templated_prompt_length(
    backend: engine_backend.LlamaCppBackend,
) -> None:
    request = _request("Hello there!", system="Be kind.")
    reply = await backend.complete(request)
    # Reference: llama-cpp-python's own Jinja formatter and tokenizer.
    vocab = llama_cpp.Llama(
        model_path=str(config.default_model_path()), vocab_only=True, verbose=False
    )
    formatter = llama_cpp.llama_chat_format.Jinja2ChatFormatter(
        template=vocab.metadata["tokenizer.chat_template"], eos_token="", bos_token=""
    )
    prompt = formatter(
        messages=[
            {"role": "system", "content": "Be kind."},
            {"role": "user", "content": "Hello there!"},
        ]
    ).prompt
    expected = len(vocab.tokenize(prompt.encode(), add_bos=False, special=True))
    vocab.close()
    assert reply.usage.input_tokens == expected


async def test_a_completions_prompt_is_continued_as_raw_text(
    backend: engine_backend.LlamaCppBackend,
) -> None:
    # A /v1/completions line: its prompt is text to continue, not a user turn.
    prompt = "The three primary colours are red,"
    request = completions.request_from_completions(
        {"model": "m", "prompt": prompt, "max_tokens": 12, "temperature": 0}
    )
    reply = await backend.complete(request)
    # Reference: llama-cpp-python's greedy continuation of the raw tokens,
    # no chat template.
    reference = llama_cpp.Llama(
        model_path=str(config.default_model_path()), n_ctx=512, verbose=False
    )
    try:
        tokens = reference.tokenize(prompt.encode(), add_bos=False, special=True)
        expected = reference.create_completion(
            tokens, max_tokens=12, temperature=0.0, repeat_penalty=1.0
        )
    finally:
        reference.close()
    assert reply.usage.input_tokens == len(tokens) < 16  # no template around it
    assert reply.text() == expected["choices"][0]["text"] != ""
    assert reply.stop_reason == "max_tokens" and reply.usage.output_tokens == 12
    # Chat requests still get the template: the same words as a user turn
    # are a longer prompt.
    as_chat = await backend.complete(_request(prompt, max_tokens=1))
    assert as_chat.usage.input_tokens > len(tokens)
    # stop still cuts the continuation.
    stop = reply.text()[3:6]
    stopped = await backend.complete(
        completions.request_from_completions(
            {"model": "m", "prompt": prompt, "max_tokens": 12, "temperature": 0, "stop": [stop]}
        )
    )
    assert stopped.stop_reason == "stop_sequence"
    assert stopped.text() == reply.text()[: reply.text().index(stop)]


async def test_tools_images_and_too_long_prompts_are_unsupported(
    backend: engine_backend.LlamaCppBackend,
) -> None:
    # Tools and images are refused by the worker's capability check, from
    # what the engine declares; too long a prompt by the engine itself.
    tool = chat.Tool(name="lookup", input_schema={"type": "object"})
    with pytest.raises(base.UnsupportedRequest, match="tool"):
        capability.check("m", backend.capabilities, _request("hi", tools=[tool]))
    image = chat.ImageBlock(source=chat.ImageSource(type="url", url="http://x/y.png"))
    request = chat.ChatRequest(
        model="m", max_tokens=4, messages=[chat.Message(role="user", content=[image])]
    )
    with pytest.raises(base.UnsupportedRequest, match="image"):
        capability.check("m", backend.capabilities, request)
    with pytest.raises(base.UnsupportedRequest, match="512 tokens per request"):
        await backend.complete(_request("word " * 600))
    assert backend.capabilities.max_context == 512


async def test_cancelling_frees_the_slot() -> None:
    backend = _backend(n_parallel=1, n_ctx=2048, prefix_cache=False)
    try:
        long_task = asyncio.create_task(
            backend.complete(
                _request("Count from 1 to 2000, separated by commas.", max_tokens=1900)
            )
        )
        await asyncio.sleep(1.0)
        assert not long_task.done()  # it holds the only slot
        long_task.cancel()
        started = time.perf_counter()
        reply = await asyncio.wait_for(backend.complete(_request("Hi", max_tokens=3)), 10)
        # The long reply would have taken tens of seconds more.
        assert time.perf_counter() - started < 5
        assert reply.usage.output_tokens == 3
        assert long_task.cancelled()
    finally:
        await backend.aclose()


async def test_concurrent_shared_prefix_matches_one_at_a_time(
    backend: engine_backend.LlamaCppBackend,
) -> None:
    requests = [
        _request(question, system=SYSTEM)
        for question in ("What is rain?", "Why is grass green?", "What is a cat?", "Who am I?")
    ]
    alone = [(await backend.complete(r)).text() for r in requests]
    hits = backend.stats.prefix_hits
    together = await asyncio.gather(*(backend.complete(r) for r in requests))
    assert [r.text() for r in together] == alone
    assert backend.stats.prefix_hits >= hits + len(requests)  # the prefix was really shared


async def test_aclose_fails_requests_and_refuses_new_ones() -> None:
    backend = _backend(n_parallel=1)
    await backend.complete(_request("Hi", max_tokens=1))
    await backend.aclose()
    with pytest.raises(base.BackendError, match="closed"):
        await backend.complete(_request("Hi", max_tokens=1))


async def test_sixteen_different_prompts_together_give_what_each_gives_alone() -> None:
    # Batch-invariant output: one slot each, replies of different lengths (so
    # slots free up mid-run and steps mix decodes with prompt chunks), and
    # the text of each is exactly what it is when run alone.
    backend = _backend(n_parallel=16, n_ctx=512)
    topics = ["rain", "owls", "salt", "maps", "glass", "tides", "bees", "jazz"]
    prompts = [f"Tell me about {t}." for t in topics] + [
        f"Write one sentence about {t} for a child." for t in topics
    ]
    requests = [_request(p, max_tokens=6 + 3 * i) for i, p in enumerate(prompts)]
    try:
        alone = [(await backend.complete(r)).text() for r in requests]
        together = await asyncio.gather(*(backend.complete(r) for r in requests))
    finally:
        await backend.aclose()
    assert len(set(alone)) == 16  # sixteen different replies
    assert [r.text() for r in together] == alone
