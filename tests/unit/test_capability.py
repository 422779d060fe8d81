"""The worker's one capability check: every rule, and the real backends'
declarations feeding it."""

from __future__ import annotations

from typing import Any

import pytest

from batchgate import chat, config, embeddings
from batchgate.backends import base, registry
from batchgate.domain.states import RequestKind
from batchgate.worker import capability

NOTHING = base.Capabilities(tools=False, images=False, thinking=False, stop_sequences=False)
EVERYTHING = base.Capabilities(tools=True, images=True, thinking=True, stop_sequences=True)
IMAGE = {"type": "image", "source": {"type": "url", "url": "http://x/y.png"}}
TOOL = {"name": "f", "input_schema": {"type": "object"}}


def ask(**fields: Any) -> chat.ChatRequest:
    return chat.ChatRequest.model_validate(
        {"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}], **fields}
    )


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        (ask(tools=[TOOL]), "does not support tool use"),
        (
            ask(
                messages=[
                    {"role": "user", "content": "q"},
                    {
                        "role": "assistant",
                        "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}],
                    },
                ]
            ),
            r"messages\[1\] has a tool_use block",
        ),
        (ask(messages=[{"role": "user", "content": [IMAGE]}]), r"messages\[0\] has an image block"),
        (ask(stop_sequences=["END"]), "does not support stop sequences"),
        (embeddings.EmbeddingRequest(model="m", input=["x"]), "does not serve embeddings requests"),
    ],
)
def test_what_a_backend_lacks_is_refused_naming_the_model(request_: Any, reason: str) -> None:
    with pytest.raises(base.UnsupportedRequest, match=reason) as refused:
        capability.check("m", NOTHING, request_)
    assert refused.value.message.startswith("model 'm' ")


def test_a_plain_request_passes_a_backend_that_lacks_every_option() -> None:
    capability.check(
        "m", NOTHING, ask(tools=[], thinking={"type": "enabled", "budget_tokens": 1024})
    )


def test_everything_passes_a_backend_that_has_it() -> None:
    chat_request = ask(
        tools=[TOOL], stop_sequences=["x"], messages=[{"role": "user", "content": [IMAGE]}]
    )
    capability.check("m", EVERYTHING, chat_request)
    serves_both = base.Capabilities(serves=frozenset({RequestKind.CHAT, RequestKind.EMBEDDINGS}))
    capability.check("m", serves_both, embeddings.EmbeddingRequest(model="m", input=["x"]))


async def test_an_openai_compatible_model_without_tools_refuses_them() -> None:
    model = config.ModelConfig(
        name="m",
        backend="openai_compatible",
        base_url="http://127.0.0.1:9/v1",
        supports_tools=False,
        supports_images=False,
    )
    backend = registry.create(model)
    try:
        with pytest.raises(base.UnsupportedRequest, match="tool use"):
            capability.check("m", backend.capabilities, ask(tools=[TOOL]))
        with pytest.raises(base.UnsupportedRequest, match="image"):
            capability.check(
                "m", backend.capabilities, ask(messages=[{"role": "user", "content": [IMAGE]}])
            )
    finally:
        await backend.aclose()
