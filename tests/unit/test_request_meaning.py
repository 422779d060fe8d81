"""OpenAI lines say what they mean in the canonical request (a raw prompt,
settings the reply echoes), not which endpoint they came in on; rows stored
when they named the endpoint read back with the same meaning."""

from __future__ import annotations

import orjson
import pytest

from batchgate import canonical
from batchgate.canonical import chat
from batchgate.wire.openai import chat_completions, completions
from batchgate.wire.openai import responses as responses_api


def test_a_completions_prompt_is_raw_text_to_continue() -> None:
    request = completions.request_from_completions({"model": "m", "prompt": "Once upon"})
    assert request.raw_prompt and not request.settings_echoed


def test_a_responses_line_echoes_its_settings() -> None:
    request = responses_api.request_from_responses({"model": "m", "input": "hi"})
    assert request.settings_echoed and not request.raw_prompt


def test_a_chat_line_means_neither() -> None:
    request = chat_completions.request_from_chat_completions(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    )
    assert not request.raw_prompt and not request.settings_echoed


@pytest.mark.parametrize(
    ("origin", "meaning"), [("completions", "raw_prompt"), ("responses", "settings_echoed")]
)
def test_a_row_stored_with_its_endpoint_reads_back_with_its_meaning(
    origin: str, meaning: str
) -> None:
    stored = {
        "model": "m",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": "hi"}],
        "origin": origin,
    }
    request = canonical.load(orjson.dumps(stored))
    assert isinstance(request, chat.ChatRequest) and getattr(request, meaning) is True
    assert "origin" not in canonical.dump(request)
