"""The OpenAI-compatible and Anthropic backends against the fake upstream,
over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from batchgate import config
from batchgate.backends import base, http_client, registry
from batchgate.canonical import chat, embeddings
from batchgate.wire.openai import completions
from batchgate.wire.openai import responses as responses_api
from tests.fakes.upstream import FakeUpstream

KEY = "sk-test-key"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream(api_key=KEY) as upstream:
        yield upstream


@pytest.fixture(autouse=True)
def _fresh(fake: FakeUpstream) -> None:
    fake.reset()


def model_config(backend: str, **options: Any) -> config.ModelConfig:
    return config.ModelConfig(name="m", backend=backend, max_concurrency=8, **options)


@contextlib.asynccontextmanager
async def opened(backend: str, **options: Any) -> AsyncIterator[base.Backend]:
    """The ``backend`` built by the registry from ``options``, closed after
    the block (its connection pool with it)."""
    made = registry.create(model_config(backend, **options))
    try:
        yield made
    finally:
        await made.aclose()


def openai_on(fake: FakeUpstream, **options: Any) -> AbstractAsyncContextManager[base.Backend]:
    """The OpenAI-compatible backend on the fake upstream, with its key."""
    return opened(
        "openai_compatible", **{"base_url": fake.openai_base_url, "api_key": KEY, **options}
    )


def anthropic_on(fake: FakeUpstream, **options: Any) -> AbstractAsyncContextManager[base.Backend]:
    """The Anthropic backend on the fake upstream, with its key."""
    return opened("anthropic", **{"base_url": fake.base_url, "api_key": KEY, **options})


def on_fake(kind: str, fake: FakeUpstream) -> AbstractAsyncContextManager[base.Backend]:
    """The fixtures' backends: OpenAI-compatible (upstream model "up-model")
    or Anthropic, each with a 5 s timeout."""
    if kind == "openai":
        return openai_on(fake, upstream_model="up-model", timeout=5)
    return anthropic_on(fake, timeout=5)


@pytest.fixture
async def openai(fake: FakeUpstream) -> AsyncIterator[base.Backend]:
    async with on_fake("openai", fake) as backend:
        yield backend


@pytest.fixture
async def anthropic(fake: FakeUpstream) -> AsyncIterator[base.Backend]:
    async with on_fake("anthropic", fake) as backend:
        yield backend


@pytest.fixture(params=["openai", "anthropic"])
async def backend(
    request: pytest.FixtureRequest, fake: FakeUpstream
) -> AsyncIterator[base.Backend]:
    async with on_fake(request.param, fake) as made:
        yield made


def ask(text: str, **params: Any) -> chat.ChatRequest:
    return chat.ChatRequest.model_validate(
        {"model": "m", "max_tokens": 50, "messages": [{"role": "user", "content": text}], **params}
    )


TOOLS = [{"name": "lookup", "description": "Look it up", "input_schema": {"type": "object"}}]


async def failure(backend: base.Backend, request: chat.ChatRequest) -> base.BackendError:
    with pytest.raises(base.BackendError) as info:
        await backend.complete(request)
    return info.value


# --- both backends


async def test_reply_text_and_usage_come_back(backend: base.Backend) -> None:
    resp = await backend.complete(ask("hello big world"))
    assert resp.text() == "echo: hello big world"
    assert resp.stop_reason == "end_turn"
    assert (resp.usage.input_tokens, resp.usage.output_tokens) == (3, 4)


async def test_max_tokens_truncation_reports_max_tokens(backend: base.Backend) -> None:
    resp = await backend.complete(ask("one two three four", max_tokens=2))
    assert (resp.text(), resp.stop_reason) == ("echo: one", "max_tokens")


async def test_stop_sequence_match_is_reported(backend: base.Backend) -> None:
    resp = await backend.complete(ask("alpha STOP beta", stop_sequences=["STOP"]))
    assert (resp.text(), resp.stop_reason, resp.stop_sequence) == (
        "echo: alpha ",
        "stop_sequence",
        "STOP",
    )


async def test_tool_use_round_trip(backend: base.Backend) -> None:
    first = ask("please use the tool", tools=TOOLS)
    resp = await backend.complete(first)
    assert resp.stop_reason == "tool_use"
    call = resp.content[-1]
    assert isinstance(call, chat.ToolUseBlock)
    assert (call.name, call.input) == ("lookup", {"query": "please use the tool"})

    follow_up = first.model_copy(
        update={
            "messages": [
                *first.messages,
                chat.Message(role="assistant", content=resp.content),
                chat.Message(
                    role="user",
                    content=[chat.ToolResultBlock(tool_use_id=call.id, content="42 apples")],
                ),
            ]
        }
    )
    final = await backend.complete(follow_up)
    assert (final.text(), final.stop_reason) == ("tool result: 42 apples", "end_turn")


async def test_429_is_retryable_with_the_retry_after_hint(
    backend: base.Backend, fake: FakeUpstream
) -> None:
    fake.script("429:2")
    error = await failure(backend, ask("x"))
    assert (error.retryable, error.status_code, error.retry_after, error.overloaded) == (
        True,
        429,
        2.0,
        True,
    )


async def test_retry_after_ms_is_read_in_seconds(backend: base.Backend, fake: FakeUpstream) -> None:
    fake.script({"status": 429, "retry_after_ms": 1500})
    assert (await failure(backend, ask("x"))).retry_after == 1.5


async def test_retry_after_http_date_is_read(backend: base.Backend, fake: FakeUpstream) -> None:
    fake.script({"status": 503, "retry_after_date": 30})
    retry_after = (await failure(backend, ask("x"))).retry_after
    assert retry_after is not None and 25 <= retry_after <= 30


@pytest.mark.parametrize("status", [500, 502, 503, 529])
async def test_server_errors_are_retryable(
    backend: base.Backend, fake: FakeUpstream, status: int
) -> None:
    fake.script(str(status))
    error = await failure(backend, ask("x"))
    assert (error.retryable, error.status_code) == (True, status)


async def test_400_is_final_with_the_upstream_message(
    backend: base.Backend, fake: FakeUpstream
) -> None:
    fake.script({"status": 400, "message": "prompt is too long"})
    error = await failure(backend, ask("x"))
    assert (error.retryable, error.status_code) == (False, 400)
    assert "prompt is too long" in error.message


async def test_backend_does_not_retry_by_itself(backend: base.Backend, fake: FakeUpstream) -> None:
    fake.script("500")
    await failure(backend, ask("only once"))
    assert len(fake.calls("only once")) == 1


async def test_dropped_connection_is_retryable(backend: base.Backend, fake: FakeUpstream) -> None:
    fake.script("drop")
    error = await failure(backend, ask("x"))
    assert error.retryable and error.status_code is None


@pytest.mark.slow  # asserts on elapsed time
async def test_concurrent_calls_each_get_a_connection(
    backend: base.Backend, fake: FakeUpstream
) -> None:
    fake.configure(latency_ms=300)
    started = time.monotonic()
    await asyncio.gather(*(backend.complete(ask(f"q{i}")) for i in range(8)))
    assert time.monotonic() - started < 0.9  # 8 calls in parallel, not 8 x 300 ms


# --- OpenAI-compatible specifics


async def test_openai_request_carries_key_upstream_model_and_params(
    openai: base.Backend, fake: FakeUpstream
) -> None:
    await openai.complete(ask("x", top_k=3, seed=9, temperature=0.5))
    call = fake.calls()[-1]
    assert call["headers"]["authorization"] == f"Bearer {KEY}"
    assert call["path"] == "/v1/chat/completions"
    sent = call["body"]
    assert (sent["model"], sent["top_k"], sent["seed"], sent["temperature"]) == (
        "up-model",
        3,
        9,
        0.5,
    )


async def test_openai_extra_body_is_sent_and_request_fields_win(fake: FakeUpstream) -> None:
    extra = {"chat_template_kwargs": {"enable_thinking": False}, "max_tokens": 1}
    async with openai_on(fake, extra_body=extra) as backend:
        await backend.complete(ask("x", max_tokens=7))
    sent = fake.calls()[-1]["body"]
    assert sent["chat_template_kwargs"] == {"enable_thinking": False}
    assert sent["max_tokens"] == 7


async def test_openai_extra_body_reaches_the_native_endpoints_too(fake: FakeUpstream) -> None:
    async with openai_on(
        fake,
        extra_body={"priority": 5, "seed": 1},
        native_endpoints=["embeddings", "completions", "responses"],
    ) as backend:
        assert isinstance(backend, base.EmbeddingBackend)
        await backend.complete(
            completions.request_from_completions({"model": "m", "prompt": "x", "seed": 7})
        )
        await backend.complete(responses_api.request_from_responses({"model": "m", "input": "y"}))
        await backend.embed(embeddings.EmbeddingRequest(model="m", input=["z"]))
    sent = {call["path"]: call["body"] for call in fake.calls()}
    assert set(sent) == {"/v1/completions", "/v1/responses", "/v1/embeddings"}
    assert all(body["priority"] == 5 for body in sent.values())
    assert sent["/v1/completions"]["seed"] == 7  # the request's own field wins
    assert sent["/v1/responses"]["seed"] == sent["/v1/embeddings"]["seed"] == 1


async def test_openai_images_are_sent_as_data_urls(
    openai: base.Backend, fake: FakeUpstream
) -> None:
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "QQ=="},
    }
    await openai.complete(
        chat.ChatRequest.model_validate(
            {
                "model": "m",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": [{"type": "text", "text": "see"}, image]}],
            }
        )
    )
    parts = fake.calls()[-1]["body"]["messages"][0]["content"]
    assert parts[1] == {"type": "image_url", "image_url": {"url": "data:image/png;base64,QQ=="}}


async def test_openai_hang_times_out_as_retryable(fake: FakeUpstream) -> None:
    fake.script("hang")
    async with openai_on(fake, timeout=0.3) as backend:
        error = await failure(backend, ask("x"))
    assert (error.retryable, error.error_type) == (True, "timeout_error")


async def test_openai_reasoning_effort_option_yields_thinking(fake: FakeUpstream) -> None:
    async with openai_on(fake, supports_reasoning_effort=True) as backend:
        resp = await backend.complete(
            ask("why", max_tokens=3000, thinking={"type": "enabled", "budget_tokens": 2048})
        )
    assert backend.capabilities.thinking
    assert fake.calls()[-1]["body"]["reasoning_effort"] == "low"
    assert resp.content[0] == chat.ThinkingBlock(thinking="thinking about: why")


async def test_openai_wrong_key_is_final_401(fake: FakeUpstream) -> None:
    async with openai_on(fake, api_key="wrong") as backend:
        error = await failure(backend, ask("x"))
    assert (error.retryable, error.status_code, error.error_type) == (
        False,
        401,
        "authentication_error",
    )


def test_openai_unknown_option_is_a_clear_error() -> None:
    with pytest.raises(http_client.OptionsError, match="bse_url"):
        registry.create(model_config("openai_compatible", bse_url="http://127.0.0.1:1/v1"))


def test_openai_missing_key_env_var_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BATCHGATE_TEST_NO_SUCH_KEY", raising=False)
    with pytest.raises(http_client.OptionsError, match="BATCHGATE_TEST_NO_SUCH_KEY"):
        registry.create(
            model_config(
                "openai_compatible",
                base_url="http://127.0.0.1:1/v1",
                api_key_env="BATCHGATE_TEST_NO_SUCH_KEY",
            )
        )


async def test_openai_key_is_read_from_the_named_env_var(
    fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCHGATE_TEST_UPSTREAM_KEY", KEY)
    async with opened(
        "openai_compatible",
        base_url=fake.openai_base_url,
        api_key_env="BATCHGATE_TEST_UPSTREAM_KEY",
    ) as backend:
        resp = await backend.complete(ask("x"))
    assert resp.text() == "echo: x"


# --- Anthropic specifics


async def test_anthropic_sends_key_version_and_drops_extensions(
    anthropic: base.Backend, fake: FakeUpstream
) -> None:
    # The fake, like the real API, rejects unknown top-level fields.
    await anthropic.complete(
        ask(
            "x",
            seed=1,
            response_format={"type": "json_object"},
            metadata={"user_id": "u", "k": "v"},
        )
    )
    call = fake.calls()[-1]
    assert call["outcome"] == "ok"
    assert (call["headers"]["x-api-key"], call["headers"]["anthropic-version"]) == (
        KEY,
        "2023-06-01",
    )
    assert call["body"]["metadata"] == {"user_id": "u"}
    assert "seed" not in call["body"]


async def test_anthropic_thinking_blocks_are_returned(anthropic: base.Backend) -> None:
    resp = await anthropic.complete(
        ask("why", max_tokens=3000, thinking={"type": "enabled", "budget_tokens": 1024})
    )
    assert resp.content[0] == chat.ThinkingBlock(
        thinking="thinking about: why", signature="fake-sig"
    )


async def test_anthropic_529_is_overloaded_and_retryable(
    anthropic: base.Backend, fake: FakeUpstream
) -> None:
    fake.script("529")
    error = await failure(anthropic, ask("x"))
    assert (error.retryable, error.overloaded, error.error_type) == (
        True,
        True,
        "overloaded_error",
    )


async def test_anthropic_hang_times_out_as_retryable(fake: FakeUpstream) -> None:
    fake.script("hang")
    async with anthropic_on(fake, timeout=0.3) as backend:
        error = await failure(backend, ask("x"))
    assert error.retryable


async def test_anthropic_wrong_key_is_final(fake: FakeUpstream) -> None:
    async with anthropic_on(fake, api_key="bad") as backend:
        error = await failure(backend, ask("x"))
    assert (error.retryable, error.status_code) == (False, 401)
