"""Provider-batch lines both ways, without sockets: a request encoded as an
upstream line reads back as the same request through the parser an upstream
batchgate applies to it, and a reply rendered by the upstream's own result
renderers decodes to the reply (with the usage and finish reason the
real-time readers give). Also the model entry's options and registry hooks,
and batch objects and create refusals as the clients read them."""

from __future__ import annotations

import base64
import struct
from typing import Any

import orjson
import pytest

from batchgate import canonical, config
from batchgate.backends import base, openai_compatible, registry
from batchgate.backends.provider_batch import (
    JobTooLarge,
    LineResult,
    ProviderBatchBackend,
    ResultLine,
    client_anthropic,
    client_openai,
)
from batchgate.backends.provider_batch import codec as codec_module
from batchgate.backends.provider_batch import options as options_module
from batchgate.canonical import chat, embeddings
from batchgate.dialects import anthropic as anthropic_dialect
from batchgate.dialects import message_results
from batchgate.dialects import openai as openai_dialect
from batchgate.domain import failures
from batchgate.domain import upstream_jobs as uj
from batchgate.domain.batch import Batch, ResultRow
from batchgate.domain.counts import StateTally
from batchgate.domain.endpoints import Endpoint
from batchgate.domain.states import BatchStatus, Dialect, RequestKind, RequestState
from batchgate.wire.openai import chat_completions

ErrorType = failures.ErrorType


def chat_request(**extra: Any) -> chat.ChatRequest:
    return chat.ChatRequest.model_validate(
        {
            "model": "tenant-model",
            "max_tokens": 32,
            "messages": [{"role": "user", "content": "What is 2 + 2?"}],
            **extra,
        }
    )


def openai_codec(endpoint: Endpoint = Endpoint.CHAT_COMPLETIONS, **options: Any) -> Any:
    return codec_module.OpenAICodec(
        endpoint,
        upstream_model="gpt-4o-mini",
        options=options_module.OpenAIBatchOptions(endpoint=endpoint, **options),
    )


def line_of(encoded: bytes) -> ResultLine:
    parsed = codec_module.parse_line(encoded)
    assert parsed is not None
    return parsed


# -- OpenAI: requests out ---------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "request_"),
    [
        (Endpoint.CHAT_COMPLETIONS, chat_request(temperature=0.5, stop_sequences=["\n\n"])),
        (Endpoint.RESPONSES, chat_request(system="Be brief.", settings_echoed=True)),
        (Endpoint.COMPLETIONS, chat_request(raw_prompt=True)),
        (
            Endpoint.EMBEDDINGS,
            embeddings.EmbeddingRequest(model="tenant-model", input=["a", "b"], dimensions=8),
        ),
    ],
)
def test_an_openai_line_reads_back_as_its_request_on_an_upstream_batchgate(
    endpoint: Endpoint, request_: canonical.Request
) -> None:
    encoded = openai_codec(endpoint).encode(4217, request_)
    obj = orjson.loads(encoded)
    assert (obj["custom_id"], obj["method"], obj["url"]) == ("4217", "POST", endpoint.value)
    assert obj["body"]["model"] == "gpt-4o-mini"

    parsed = openai_dialect.parse_line(encoded, 1, endpoint.value)
    assert isinstance(parsed, openai_dialect.ParsedLine), parsed
    assert parsed.custom_id == "4217"
    back = parsed.request.model_dump(exclude={"model", "encoding_format"})
    sent = request_.model_dump(exclude={"model", "encoding_format"})
    assert back == sent


def test_a_chat_line_body_is_the_real_time_backends_body() -> None:
    request = chat_request(tools=[{"name": "f", "input_schema": {"type": "object"}}])
    extra = {"chat_template_kwargs": {"enable_thinking": False}}
    body = orjson.loads(
        openai_codec(max_tokens_field="max_completion_tokens", extra_body=extra).encode(1, request)
    )["body"]
    expected = chat_completions.request_to_chat_completions(
        request, upstream_model="gpt-4o-mini", max_tokens_field="max_completion_tokens"
    )
    assert body == {**extra, **expected}


@pytest.mark.parametrize(
    ("endpoint", "request_", "says"),
    [
        (Endpoint.RESPONSES, chat_request(stop_sequences=["x"]), "stop sequences"),
        (Endpoint.EMBEDDINGS, chat_request(), "chat request"),
        (
            Endpoint.CHAT_COMPLETIONS,
            embeddings.EmbeddingRequest(model="m", input=["a"]),
            "embeddings request",
        ),
        (Endpoint.COMPLETIONS, chat_request(system="s"), "single-prompt"),
    ],
)
def test_a_request_the_endpoint_cannot_carry_is_unsupported(
    endpoint: Endpoint, request_: canonical.Request, says: str
) -> None:
    with pytest.raises(base.UnsupportedRequest, match=says):
        openai_codec(endpoint).encode(1, request_)


# -- OpenAI: results back ---------------------------------------------------------

ANSWER = chat.ChatResponse.model_validate(
    {
        "id": "msg_1",
        "model": "gpt-4o-mini",
        "content": [{"type": "text", "text": "4"}],
        "stop_reason": "max_tokens",
        "usage": {"input_tokens": 12, "output_tokens": 3, "cache_read_input_tokens": 5},
    }
)


def upstream_batch(endpoint: Endpoint) -> Batch:
    return Batch(
        id="batch_up",
        owner="key_1",
        dialect=Dialect.OPENAI,
        endpoint=endpoint.value,
        input_file_id="file-1",
        completion_window="24h",
        metadata=None,
        status=BatchStatus.COMPLETED,
        errors=None,
        total=1,
        created_at=100.0,
        expires_at=200.0,
        tally=StateTally(by_state={RequestState.SUCCEEDED: 1}),
    )


def rendered(endpoint: Endpoint, row: ResultRow) -> bytes:
    """The line an upstream batchgate writes to its output or error file."""
    return orjson.dumps(openai_dialect.result_line(upstream_batch(endpoint), row))


def row(state: RequestState, **fields: Any) -> ResultRow:
    values: dict[str, Any] = {"result": None, "error": None, "finished_at": 150.0, **fields}
    return ResultRow(index=0, custom_id="4217", state=state, **values)


@pytest.mark.parametrize(
    ("endpoint", "request_"),
    [
        (Endpoint.CHAT_COMPLETIONS, chat_request()),
        (Endpoint.RESPONSES, chat_request(settings_echoed=True)),
        (Endpoint.COMPLETIONS, chat_request(raw_prompt=True)),
    ],
)
def test_an_upstream_reply_decodes_to_the_reply_with_its_usage_and_finish_reason(
    endpoint: Endpoint, request_: chat.ChatRequest
) -> None:
    line = rendered(
        endpoint,
        row(
            RequestState.SUCCEEDED,
            result=ANSWER.model_dump(mode="json"),
            params=canonical.dump(request_),
        ),
    )
    result = openai_codec(endpoint).decode(line_of(line), request_)
    assert result.error is None and result.request_id == 4217
    assert isinstance(result.response, chat.ChatResponse)
    assert result.response.text() == "4"
    assert result.response.stop_reason == "max_tokens"
    usage = result.response.usage
    # /v1/completions has no place for cached tokens: they count as input.
    assert (usage.input_tokens + (usage.cache_read_input_tokens or 0), usage.output_tokens) == (
        17,
        3,
    )


def test_a_stop_sequence_reads_as_the_real_time_reader_reads_it() -> None:
    """Chat Completions says only ``stop``: the request's stop sequences
    decide whether it was one, exactly as on the real-time path."""
    request = chat_request(stop_sequences=["END"])
    body = {
        "id": "c1",
        "model": "gpt-4o-mini",
        "choices": [
            {"message": {"role": "assistant", "content": "4 END"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 2},
    }
    line = {"custom_id": "7", "response": {"status_code": 200, "body": body}, "error": None}
    result = openai_codec().decode(line_of(orjson.dumps(line)), request)
    assert result.response == chat_completions.response_from_chat_completion(body, request=request)
    assert isinstance(result.response, chat.ChatResponse)
    assert (result.response.stop_reason, result.response.stop_sequence) == ("stop_sequence", "END")


def test_an_embeddings_reply_decodes_to_its_vectors() -> None:
    request = embeddings.EmbeddingRequest(model="m", input=["a", "b"])
    vectors = [[1.0, 0.0], [0.0, 1.0]]
    data = [
        {
            "object": "embedding",
            "index": i,
            "embedding": base64.b64encode(struct.pack("<2f", *vector)).decode(),
        }
        for i, vector in enumerate(vectors)
    ]
    body = {"object": "list", "data": data, "model": "e", "usage": {"prompt_tokens": 4}}
    line = {"custom_id": "9", "response": {"status_code": 200, "body": body}, "error": None}
    result = openai_codec(Endpoint.EMBEDDINGS).decode(line_of(orjson.dumps(line)), request)
    assert isinstance(result.response, embeddings.EmbeddingResponse)
    assert result.response.vectors == vectors
    assert result.response.usage.input_tokens == 4


@pytest.mark.parametrize(
    ("error", "retryable", "status"),
    [
        (failures.RequestError(ErrorType.RATE_LIMIT, "slow down", status_code=429), True, 429),
        (failures.RequestError(ErrorType.API, "boom", status_code=500), True, 500),
        (failures.RequestError(ErrorType.OVERLOADED, "busy", status_code=529), True, 529),
        (failures.RequestError(ErrorType.INVALID_REQUEST, "bad", status_code=400), False, 400),
        (failures.RequestError(ErrorType.AUTHENTICATION, "who", status_code=401), False, 401),
    ],
)
def test_an_error_line_is_classified_as_a_real_time_call_would_be(
    error: failures.RequestError, retryable: bool, status: int
) -> None:
    line = rendered(Endpoint.CHAT_COMPLETIONS, row(RequestState.ERRORED, error=error))
    result = openai_codec().decode(line_of(line), chat_request())
    assert result.response is None and result.error is not None
    assert result.retryable is retryable
    assert result.error.status_code == status
    assert result.error.type is error.type
    assert error.message in result.error.message


@pytest.mark.parametrize("state", [RequestState.EXPIRED, RequestState.CANCELED])
def test_a_line_the_upstream_never_ran_stays_unfinished(state: RequestState) -> None:
    line = rendered(Endpoint.CHAT_COMPLETIONS, row(state))
    assert b"batch_" in line  # batch_expired / batch_cancelled
    result = openai_codec().decode(line_of(line), chat_request())
    assert result == LineResult(4217)


def test_another_error_without_a_response_is_final() -> None:
    line = {"custom_id": "3", "response": None, "error": {"code": "weird", "message": "no"}}
    result = openai_codec().decode(line_of(orjson.dumps(line)), chat_request())
    assert result.error is not None and not result.retryable
    assert (result.error.code, result.error.type) == ("weird", ErrorType.API)


@pytest.mark.parametrize(
    "line",
    [
        {"custom_id": "3", "response": {"status_code": 200, "body": {"choices": []}}},
        {"custom_id": "3", "response": {"body": {}}},
        {"custom_id": "3"},
    ],
)
def test_an_unreadable_line_is_a_final_upstream_error(line: dict[str, Any]) -> None:
    result = openai_codec().decode(line_of(orjson.dumps(line)), chat_request())
    assert result.error is not None and not result.retryable
    assert result.error.status_code == 502


@pytest.mark.parametrize(
    "raw",
    [
        b'{"custom_id": "req-1", "response": null}',
        b'{"custom_id": 12, "response": null}',
        b'{"response": null}',
        b"[1, 2]",
        b"not json",
        b'{"custom_id": "1234567890123456789"}',  # longer than any request id
    ],
)
def test_a_line_that_is_not_ours_is_skipped(raw: bytes) -> None:
    assert codec_module.parse_line(raw) is None


# -- Anthropic ------------------------------------------------------------------------


def anthropic_codec() -> codec_module.AnthropicCodec:
    return codec_module.AnthropicCodec(upstream_model="claude-haiku")


def test_an_anthropic_request_reads_back_on_an_upstream_batchgate() -> None:
    request = chat_request(
        system="Be brief.", metadata={"user_id": "u1", "tenant": "t"}, temperature=0.2
    )
    encoded = anthropic_codec().encode(55, request)
    items = anthropic_dialect.parse_create(b'{"requests":[' + encoded + b"]}")
    assert items[0].custom_id == "55"
    back = items[0].params
    assert back.model == "claude-haiku"
    assert back.metadata == {"user_id": "u1"}  # the one key Messages accepts
    assert back.model_dump(exclude={"model", "metadata"}) == request.model_dump(
        exclude={"model", "metadata"}
    )


def test_an_anthropic_job_carries_no_embeddings() -> None:
    with pytest.raises(base.UnsupportedRequest):
        anthropic_codec().encode(1, embeddings.EmbeddingRequest(model="m", input=["a"]))


def anthropic_line(state: RequestState, **fields: Any) -> ResultLine:
    return line_of(orjson.dumps(message_results.result_line(row(state, **fields))))


def test_a_succeeded_anthropic_result_decodes_to_the_reply() -> None:
    line = anthropic_line(RequestState.SUCCEEDED, result=ANSWER.model_dump(mode="json"))
    result = anthropic_codec().decode(line, chat_request())
    assert result.response == ANSWER
    assert result.error is None


@pytest.mark.parametrize(
    ("error_type", "retryable"),
    [
        (ErrorType.INVALID_REQUEST, False),
        (ErrorType.PERMISSION, False),
        (ErrorType.OVERLOADED, True),
        (ErrorType.API, True),
        (ErrorType.RATE_LIMIT, True),
    ],
)
def test_an_errored_anthropic_result_keeps_its_error_type(
    error_type: ErrorType, retryable: bool
) -> None:
    error = failures.RequestError(error_type, "it went wrong")
    result = anthropic_codec().decode(
        anthropic_line(RequestState.ERRORED, error=error), chat_request()
    )
    assert result.error is not None and result.response is None
    assert result.error.type is error_type
    assert "it went wrong" in result.error.message
    assert result.retryable is retryable


@pytest.mark.parametrize("state", [RequestState.CANCELED, RequestState.EXPIRED])
def test_a_canceled_or_expired_anthropic_result_stays_unfinished(state: RequestState) -> None:
    assert anthropic_codec().decode(anthropic_line(state), chat_request()) == LineResult(4217)


@pytest.mark.parametrize(
    "result",
    [
        {"type": "mystery"},
        {},
        {"type": "succeeded", "message": {"content": "not a list"}},
        {"type": "errored", "error": "text"},
    ],
)
def test_an_unreadable_anthropic_result_is_final(result: dict[str, Any]) -> None:
    line = line_of(orjson.dumps({"custom_id": "5", "result": result}))
    decoded = anthropic_codec().decode(line, chat_request())
    assert decoded.error is not None and not decoded.retryable


# -- options and the registry ------------------------------------------------------


def model(backend: str, **options: Any) -> config.ModelConfig:
    return config.ModelConfig(name="cheap", backend=backend, api_key="sk-test", **options)


def test_each_kind_has_its_providers_limits_by_default() -> None:
    openai = options_module.OpenAIBatchOptions().limits()
    anthropic = options_module.AnthropicBatchOptions().limits()
    assert (openai.max_requests, openai.max_bytes) == (50_000, 200 * 1024 * 1024)
    assert (anthropic.max_requests, anthropic.max_bytes) == (100_000, 256 * 1024 * 1024)
    assert (openai.flush_after_seconds, openai.poll_seconds, openai.poll_max_seconds) == (
        60,
        30,
        600,
    )
    assert openai.sync_fallback_before == anthropic.sync_fallback_before == 7200


def test_options_take_a_duration_and_the_entrys_limits() -> None:
    parsed = options_module.AnthropicBatchOptions(
        sync_fallback_before="90m", max_requests_per_job=10, max_bytes_per_job=4096
    )
    limits = parsed.limits()
    assert (limits.sync_fallback_before, limits.max_requests, limits.max_bytes) == (5400, 10, 4096)


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"sync_fallback_before": "soon"}, "not a duration"),
        ({"endpoint": "/v1/messages"}, "endpoint"),
        ({"realtime": {"base_url": "http://x"}}, "names no backend"),
        ({"realtime": {"backend": "anthropic_batch"}}, "another provider batch"),
        ({"poll_seconds": 60, "poll_max_seconds": 10}, "poll_max_seconds"),
        ({"native_endpoints": ["embeddings"]}, "native_endpoints"),
    ],
)
def test_bad_options_name_the_model_and_the_problem(options: dict[str, Any], says: str) -> None:
    with pytest.raises(ValueError, match=says) as caught:
        registry.capabilities(model("openai_batch", **options))
    assert "'cheap'" in str(caught.value)


def test_an_embeddings_endpoint_serves_embeddings_only() -> None:
    caps = registry.capabilities(model("openai_batch", endpoint="/v1/embeddings"))
    assert caps is not None and caps.serves == frozenset({RequestKind.EMBEDDINGS})
    chat_caps = registry.capabilities(model("openai_batch", supports_tools=False))
    assert chat_caps is not None and chat_caps.serves == frozenset({RequestKind.CHAT})
    assert not chat_caps.tools and chat_caps.images
    responses = registry.capabilities(model("openai_batch", endpoint="/v1/responses"))
    assert responses is not None and not responses.stop_sequences
    messages = registry.capabilities(model("anthropic_batch", max_context=1000))
    assert messages is not None and messages.tools and messages.max_context == 1000


async def test_the_registry_builds_a_batch_backend_with_its_realtime_fallback() -> None:
    entry = model(
        "openai_batch",
        price={"input": 1.0, "output": 2.0},
        max_concurrency=3,
        sync_fallback_before="1h",
        realtime={"backend": "openai_compatible", "base_url": "http://127.0.0.1:9/v1"},
    )
    backend = registry.create(entry)
    try:
        assert isinstance(backend, ProviderBatchBackend)
        assert (backend.kind, backend.endpoint, backend.model) == (
            "openai_batch",
            "/v1/chat/completions",
            "cheap",
        )
        assert backend.limits.sync_fallback_before == 3600
        assert isinstance(backend.realtime, openai_compatible.OpenAICompatibleBackend)
        realtime = options_module.OpenAIBatchOptions.model_validate(entry.options).realtime_model(
            entry
        )
        assert realtime is not None
        assert (realtime.name, realtime.backend, realtime.max_concurrency) == (
            "cheap",
            "openai_compatible",
            3,
        )
        assert realtime.price == entry.price
    finally:
        await backend.aclose()


async def test_a_fallback_that_cannot_serve_the_models_requests_is_refused() -> None:
    entry = model(
        "openai_batch",
        endpoint="/v1/embeddings",
        realtime={"backend": "openai_compatible", "base_url": "http://127.0.0.1:9/v1"},
    )
    with pytest.raises(ValueError, match="does not serve embeddings"):
        registry.create(entry)


# -- batch objects and refusals, as the clients read them ----------------------------


def test_an_openai_batch_failed_for_its_token_limit_is_a_refusal() -> None:
    obj = {
        "id": "batch_1",
        "status": "failed",
        "created_at": 1700000000,
        "metadata": {"batchgate_job": "job_9"},
        "request_counts": {"total": 4, "completed": 0, "failed": 0},
        "errors": {"data": [{"code": "token_limit_exceeded", "message": "Enqueued limit"}]},
    }
    batch = client_openai.batch_from(obj)
    assert (batch.end_status, batch.refusal, batch.job_id) == (
        uj.EndStatus.FAILED,
        "token_limit_exceeded",
        "job_9",
    )
    assert batch.error == "Enqueued limit" and batch.request_total == 4
    other = client_openai.batch_from({**obj, "errors": {"data": [{"code": "invalid_json_line"}]}})
    assert other.refusal is None and other.error == "invalid_json_line"
    running = client_openai.batch_from({**obj, "status": "finalizing"})
    assert running.end_status is None and running.refusal is None


@pytest.mark.parametrize(
    ("status", "body", "too_large"),
    [
        (429, {"error": {"code": "token_limit_exceeded", "message": "m"}}, True),
        (400, {"error": {"code": "token_limit_exceeded", "message": "m"}}, True),
        (429, {"error": {"code": "rate_limit_exceeded", "message": "m"}}, False),
        (500, {"error": {"code": "token_limit_exceeded", "message": "m"}}, False),
    ],
)
def test_openai_create_refusals(status: int, body: dict[str, Any], too_large: bool) -> None:
    refused = client_openai._too_large(status, orjson.dumps(body))
    assert isinstance(refused, JobTooLarge) is too_large


@pytest.mark.parametrize(
    ("status", "body", "too_large"),
    [
        (413, {"type": "error", "error": {"type": "request_too_large", "message": "m"}}, True),
        (413, b"<html>too big</html>", True),
        (400, {"type": "error", "error": {"type": "request_too_large", "message": "m"}}, True),
        (400, {"type": "error", "error": {"type": "invalid_request_error", "message": "m"}}, False),
    ],
)
def test_anthropic_create_refusals(status: int, body: Any, too_large: bool) -> None:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    assert isinstance(client_anthropic._too_large(status, raw), JobTooLarge) is too_large


@pytest.mark.parametrize(
    ("status", "counts", "end"),
    [
        ("in_progress", {"processing": 2}, None),
        ("canceling", {"processing": 1, "canceled": 1}, None),
        ("ended", {"succeeded": 1, "errored": 1}, uj.EndStatus.COMPLETED),
        ("ended", {"succeeded": 1, "canceled": 1}, uj.EndStatus.CANCELLED),
        ("ended", {"succeeded": 1, "expired": 1, "canceled": 1}, uj.EndStatus.EXPIRED),
    ],
)
def test_an_anthropic_batch_ends_as_its_counts_say(
    status: str, counts: dict[str, int], end: uj.EndStatus | None
) -> None:
    obj = {
        "id": "msgbatch_1",
        "processing_status": status,
        "created_at": "2026-12-05T21:00:00.500000Z",
        "request_counts": counts,
        "results_url": "https://api.example/v1/messages/batches/msgbatch_1/results",
    }
    batch = client_anthropic.batch_from(obj)
    assert batch.end_status is end
    assert batch.request_total == sum(counts.values())
    assert batch.created_at == 1796504400.5
    assert batch.output_file_id == obj["results_url"]
    long_url = {**obj, "results_url": "https://x/" + "a" * uj.MAX_UPSTREAM_ID_CHARS}
    assert client_anthropic.batch_from(long_url).output_file_id is None
