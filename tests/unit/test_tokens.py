"""The input-token estimate used for models whose tokenizer batchgate lacks."""

from __future__ import annotations

from batchgate import config
from batchgate.backends import tokens
from batchgate.canonical import chat, embeddings


def _request(content: str, system: str | None = None) -> chat.ChatRequest:
    return chat.ChatRequest(
        model="remote",
        max_tokens=10,
        system=system,
        messages=[chat.Message(role="user", content=content)],
    )


def test_estimate_is_about_four_characters_a_token_plus_framing() -> None:
    # 400 characters -> 100 tokens, 3 for the message, 3 to prime the reply.
    assert tokens.estimate(_request("abcd" * 100)) == 106


def test_estimate_counts_the_system_prompt_as_a_message() -> None:
    assert tokens.estimate(_request("abcd", system="x" * 40)) == 1 + 10 + 6 + 3


def test_max_tokens_is_output_not_input() -> None:
    small, large = _request("hello"), _request("hello").model_copy(update={"max_tokens": 4000})
    assert tokens.estimate(small) == tokens.estimate(large)


def test_a_remote_model_is_estimated_without_loading_anything() -> None:
    models = {"remote": config.ModelConfig(name="remote", backend="openai_compatible")}
    request = _request("abcd" * 100)
    assert tokens.TokenCounter(models).count(request) == tokens.estimate(request)


def _with_tool(request: chat.ChatRequest, schema_size: int) -> chat.ChatRequest:
    tool = chat.Tool(
        name="lookup",
        description="d" * schema_size,
        input_schema={"type": "object", "properties": {}},
    )
    return request.model_copy(update={"tools": [tool]})


def test_estimate_counts_tool_definitions() -> None:
    # A chat template renders the tools into the prompt: 4,000 characters of
    # tool description are about 1,000 tokens more.
    plain = _request("hello")
    assert tokens.estimate(_with_tool(plain, 4000)) >= tokens.estimate(plain) + 1000


def test_upper_bound_counts_tool_definitions_byte_for_byte() -> None:
    plain = _request("hello")
    with_tool = _with_tool(plain, 4000)
    assert tokens.upper_bound(with_tool) >= tokens.upper_bound(plain) + 4000


def test_upper_bound_covers_every_prompt_byte_and_max_tokens() -> None:
    request = _request("é" * 100, system="s" * 50)  # 200 bytes + 50 bytes
    assert tokens.upper_bound(request) >= 250 + request.max_tokens
    assert tokens.upper_bound(request) >= tokens.estimate(request) + request.max_tokens


def test_upper_bound_of_embeddings_is_their_bytes_or_token_ids() -> None:
    texts = embeddings.EmbeddingRequest(model="e", input=["abcd", "é"])
    ids = embeddings.EmbeddingRequest(model="e", input=[[1, 2, 3]])
    assert tokens.upper_bound(texts) == (4 + 2) + (2 + 2)
    assert tokens.upper_bound(ids) == 3
