"""The input-token estimate used for models whose tokenizer batchgate lacks."""

from __future__ import annotations

from batchgate import chat, config
from batchgate.services import token_count


def _request(content: str, system: str | None = None) -> chat.ChatRequest:
    return chat.ChatRequest(
        model="remote",
        max_tokens=10,
        system=system,
        messages=[chat.Message(role="user", content=content)],
    )


def test_estimate_is_about_four_characters_a_token_plus_framing() -> None:
    # 400 characters -> 100 tokens, 3 for the message, 3 to prime the reply.
    assert token_count.estimate(_request("abcd" * 100)) == 106


def test_estimate_counts_the_system_prompt_as_a_message() -> None:
    assert token_count.estimate(_request("abcd", system="x" * 40)) == 1 + 10 + 6 + 3


def test_max_tokens_is_output_not_input() -> None:
    small, large = _request("hello"), _request("hello").model_copy(update={"max_tokens": 4000})
    assert token_count.estimate(small) == token_count.estimate(large)


def test_a_remote_model_is_estimated_without_loading_anything() -> None:
    models = {"remote": config.ModelConfig(name="remote", backend="openai_compatible")}
    request = _request("abcd" * 100)
    assert token_count.TokenCounter(models).count(request) == token_count.estimate(request)
