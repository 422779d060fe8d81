"""The one capability check (submit and dispatch): every rule, and the
backends' declarations feeding it."""

from __future__ import annotations

from typing import Any

import pytest

from batchgate import config
from batchgate.backends import base, capability, registry
from batchgate.canonical import chat, embeddings
from batchgate.domain.states import RequestKind
from batchgate.services import batch_create
from batchgate.wire.openai import chat_completions
from batchgate.wire.openai import responses as responses_api

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
    # Empty tools and thinking turned off ask for nothing the backend lacks;
    # neither do thinking blocks of earlier turns (they are dropped).
    earlier = {"role": "assistant", "content": [{"type": "thinking", "thinking": "hmm"}]}
    capability.check(
        "m",
        NOTHING,
        ask(
            tools=[],
            thinking={"type": "disabled"},
            messages=[{"role": "user", "content": "q"}, earlier, {"role": "user", "content": "r"}],
        ),
    )


PDF_BY_URL = {"type": "document", "source": {"type": "url", "url": "https://x/a.pdf"}}
PDF_INLINE = {
    "type": "document",
    "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"},
}
TEXT_DOCUMENT = {
    "type": "document",
    "source": {"type": "text", "media_type": "text/plain", "data": "some text"},
    "citations": {"enabled": True},
}


@pytest.mark.parametrize(
    ("document", "images", "reason"),
    [
        (PDF_BY_URL, False, r"messages\[2\] has one \(url source\); it serves text only"),
        (PDF_INLINE, True, r"\(base64 source\); it serves text and images"),
    ],
)
def test_a_pdf_document_is_refused_by_a_backend_that_cannot_read_pdfs(
    document: dict[str, Any], images: bool, reason: str
) -> None:
    request = ask(
        messages=[
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [document, {"type": "text", "text": "summarise"}]},
        ]
    )
    backend = base.Capabilities(images=images)
    with pytest.raises(base.UnsupportedRequest, match=reason) as refused:
        capability.check("m", backend, request)
    assert refused.value.message.startswith("model 'm' cannot read PDF documents")


def test_a_text_document_needs_no_capability_and_a_pdf_needs_pdfs() -> None:
    capability.check("m", NOTHING, ask(messages=[{"role": "user", "content": [TEXT_DOCUMENT]}]))
    reads_pdfs = base.Capabilities(pdfs=True)
    for pdf in (PDF_BY_URL, PDF_INLINE):
        capability.check("m", reads_pdfs, ask(messages=[{"role": "user", "content": [pdf]}]))


def test_only_the_anthropic_backend_declares_it_reads_pdfs() -> None:
    declared = {
        name: registry.capabilities(model)
        for name, model in {
            "embedded": embedded_model(),
            "openai": openai_model(),
            "anthropic": config.ModelConfig(name="c", backend="anthropic"),
        }.items()
    }
    assert {name: caps.pdfs for name, caps in declared.items() if caps} == {
        "embedded": False,
        "openai": False,
        "anthropic": True,
    }


def test_everything_passes_a_backend_that_has_it() -> None:
    chat_request = ask(
        tools=[TOOL],
        stop_sequences=["x"],
        messages=[{"role": "user", "content": [IMAGE]}],
        thinking={"type": "enabled", "budget_tokens": 1024},
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


def openai_model(**options: Any) -> config.ModelConfig:
    return config.ModelConfig(
        name="m", backend="openai_compatible", base_url="http://127.0.0.1:9/v1", **options
    )


def embedded_model(**options: Any) -> config.ModelConfig:
    return config.ModelConfig(name="m", backend="llama_cpp", **options)


@pytest.mark.parametrize(
    ("model", "lacks"),
    [
        (embedded_model(), True),
        (openai_model(), True),
        (openai_model(supports_reasoning_effort=True), False),
    ],
)
def test_a_responses_reasoning_effort_errors_on_a_model_without_reasoning_control(
    model: config.ModelConfig, lacks: bool
) -> None:
    declared = registry.capabilities(model)
    assert declared is not None
    request = responses_api.request_from_responses(
        {"model": "m", "input": "hi", "reasoning": {"effort": "low"}}
    )
    if lacks:
        with pytest.raises(base.UnsupportedRequest, match="'m' does not support reasoning effort"):
            capability.check("m", declared, request)
    else:
        capability.check("m", declared, request)


@pytest.mark.parametrize(
    "thinking_ask",
    [
        # Optional params the backend drops (DESIGN.md section 4): the
        # documented native example sends `thinking` to the embedded model.
        lambda: chat_completions.request_from_chat_completions(
            {
                "model": "m",
                "messages": [{"role": "user", "content": "hi"}],
                "reasoning_effort": "high",
            }
        ),
        lambda: ask(max_tokens=2000, thinking={"type": "enabled", "budget_tokens": 1024}),
        lambda: ask(thinking={"type": "adaptive"}),
    ],
)
@pytest.mark.parametrize("model", [embedded_model(), openai_model()])
def test_messages_thinking_and_chat_reasoning_effort_are_dropped_not_refused(
    thinking_ask: Any, model: config.ModelConfig
) -> None:
    declared = registry.capabilities(model)
    assert declared is not None and not declared.thinking
    capability.check("m", declared, thinking_ask())


def test_reasoning_effort_none_asks_for_nothing() -> None:
    request = responses_api.request_from_responses(
        {"model": "m", "input": "hi", "reasoning": {"effort": "none"}}
    )
    declared = registry.capabilities(embedded_model())
    assert declared is not None
    capability.check("m", declared, request)


def test_built_in_backends_declare_capabilities_from_their_settings_alone() -> None:
    embedded = registry.capabilities(embedded_model(n_ctx=512, embeddings_only=True))
    assert embedded == base.Capabilities(
        tools=False,
        images=False,
        thinking=False,
        max_context=512,
        serves=frozenset({RequestKind.EMBEDDINGS}),
    )
    remote = registry.capabilities(openai_model(max_context=1000, native_endpoints=["embeddings"]))
    assert remote is not None and remote.max_context == 1000 and remote.tools
    assert remote.serves == frozenset({RequestKind.CHAT, RequestKind.EMBEDDINGS})
    claude = registry.capabilities(
        config.ModelConfig(name="c", backend="anthropic", max_context=200000)
    )
    assert claude is not None and claude.thinking and claude.max_context == 200000
    assert registry.capabilities(config.ModelConfig(name="x", backend="third_party")) is None


async def test_a_built_backend_declares_what_its_settings_say() -> None:
    model = openai_model(supports_reasoning_effort=True, max_context=4096)
    backend = registry.create(model)
    try:
        assert backend.capabilities == registry.capabilities(model)
    finally:
        await backend.aclose()


def test_context_windows_come_from_the_declared_capabilities() -> None:
    models = {
        "embedded": embedded_model(n_ctx=512).model_copy(update={"name": "embedded"}),
        "remote": openai_model(max_context=1000),
        "unbounded": openai_model(),
        "other": config.ModelConfig(name="other", backend="third_party"),
    }
    declared = batch_create.declared_capabilities(models)
    windows = {name: c.max_context for name, c in declared.items() if c.max_context is not None}
    assert windows == {"embedded": 512, "remote": 1000}
    assert "other" not in declared  # declares nothing: only its worker can check


SMALL = base.Capabilities(max_context=512)


def test_max_tokens_above_the_context_window_is_the_clients_value_out_of_range() -> None:
    refused = capability.refusal(SMALL, ask(max_tokens=513))
    assert refused is not None and refused.field == "max_tokens"
    assert "context window of 512 tokens" in refused.reason
    assert capability.refusal(SMALL, ask(max_tokens=512)) is None
    assert capability.refusal(base.Capabilities(), ask(max_tokens=10**6)) is None
    # The same rule at dispatch: the row errors, naming the model.
    with pytest.raises(base.UnsupportedRequest, match="model 'm' has a context window of 512"):
        capability.check("m", SMALL, ask(max_tokens=513))


@pytest.mark.parametrize(
    "line",
    [
        lambda: chat_completions.request_from_chat_completions(
            {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        ),
        lambda: responses_api.request_from_responses({"model": "m", "input": "hi"}),
    ],
)
def test_a_defaulted_max_tokens_is_capped_by_the_backend_not_refused(line: Any) -> None:
    request = line()
    assert request.max_tokens > 512 and request.max_tokens_defaulted
    assert capability.refusal(SMALL, request) is None


def test_a_chosen_max_tokens_is_checked_even_when_it_equals_a_default() -> None:
    request = chat_completions.request_from_chat_completions(
        {"model": "m", "max_tokens": 4096, "messages": [{"role": "user", "content": "hi"}]}
    )
    assert not request.max_tokens_defaulted
    assert capability.refusal(SMALL, request) is not None


class _NoEmbed:
    """A backend that says it serves embeddings but has no embed method."""

    capabilities = base.Capabilities(serves=frozenset({RequestKind.CHAT, RequestKind.EMBEDDINGS}))

    async def complete(self, request: chat.ChatRequest) -> chat.ChatResponse:
        raise NotImplementedError

    async def aclose(self) -> None:
        return None


def test_a_backend_without_an_embed_method_is_refused_embeddings_by_the_one_check() -> None:
    declared = capability.declared(_NoEmbed())
    assert declared.serves == frozenset({RequestKind.CHAT})
    with pytest.raises(base.UnsupportedRequest, match="does not serve embeddings requests"):
        capability.check("m", declared, embeddings.EmbeddingRequest(model="m", input=["x"]))
