"""OpenAI file batches for ``/v1/embeddings``, ``/v1/responses`` and
``/v1/completions``, driven by the official ``openai`` SDK against a fake
upstream, which serves one model through chat completions only and another
with its own ``/embeddings``, ``/completions`` and ``/responses``."""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types import Completion, CreateEmbeddingResponse
from openai.types.responses import Response

from tests import harness, openai_batches
from tests.fakes import upstream_endpoints
from tests.fakes.upstream import FakeUpstream

CHAT_ONLY = "fake-chat"
NATIVE = "fake-native"


@pytest.fixture
def server(tmp_path: Path, upstream: FakeUpstream) -> Iterator[harness.RunningServer]:
    models = {
        CHAT_ONLY: harness.openai_model(CHAT_ONLY, upstream.openai_base_url),
        NATIVE: harness.openai_model(
            NATIVE,
            upstream.openai_base_url,
            native_endpoints=["embeddings", "completions", "responses"],
            supports_reasoning_effort=True,
        ),
    }
    with harness.serve(harness.make_settings(tmp_path, models)) as running:
        yield running


@pytest.fixture
def client(server: harness.RunningServer) -> Iterator[openai.OpenAI]:
    with server.openai(server.api_key, max_retries=0) as sdk:
        yield sdk


run_batch = openai_batches.run
output_lines = openai_batches.result_lines
line = openai_batches.line


def paths(upstream: FakeUpstream) -> set[str]:
    return {call["path"] for call in upstream.calls()}


# --- embeddings


def test_embeddings_batch_returns_one_vector_per_input_as_floats_or_base64(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    url = "/v1/embeddings"
    batch = run_batch(
        client,
        url,
        [
            line("one", url, model=NATIVE, input="the cat sat"),
            line("many", url, model=NATIVE, input=["red", "green apples"], dimensions=4),
            line("b64", url, model=NATIVE, input="packed", encoding_format="base64"),
        ],
    )
    assert batch.status == "completed" and batch.request_counts.completed == 3
    assert batch.model == NATIVE
    out = output_lines(client, batch.output_file_id)

    one = CreateEmbeddingResponse.model_validate(out["one"]["response"]["body"])
    assert one.object == "list" and one.model == NATIVE
    assert one.data[0].embedding == pytest.approx(upstream_endpoints.vector_for("the cat sat"))
    assert one.usage.prompt_tokens == 3 == one.usage.total_tokens

    many = CreateEmbeddingResponse.model_validate(out["many"]["response"]["body"])
    assert [item.index for item in many.data] == [0, 1]
    assert many.data[1].embedding == pytest.approx(upstream_endpoints.vector_for("green apples", 4))

    packed = out["b64"]["response"]["body"]["data"][0]["embedding"]
    raw = base64.b64decode(packed)
    floats = list(struct.unpack(f"<{len(raw) // 4}f", raw))
    assert floats == pytest.approx(upstream_endpoints.vector_for("packed"))
    assert paths(upstream) == {"/v1/embeddings"}
    assert batch.usage.input_tokens == 3 + 3 + 1 and batch.usage.output_tokens == 0


def test_embeddings_for_a_model_without_them_end_errored_naming_what_it_serves(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    url = "/v1/embeddings"
    batch = run_batch(client, url, [line("e", url, model=CHAT_ONLY, input="hello")])
    assert batch.status == "completed" and batch.output_file_id is None
    error = output_lines(client, batch.error_file_id)["e"]["response"]
    assert error["status_code"] == 400
    message = error["body"]["error"]["message"]
    assert repr(CHAT_ONLY) in message and "embeddings" in message and "serves: chat" in message
    assert upstream.calls() == []


def test_results_route_renders_embeddings_like_the_output_file(client: openai.OpenAI) -> None:
    url = "/v1/embeddings"
    lines = [line("b64", url, model=NATIVE, input="x", encoding_format="base64")]
    batch = run_batch(client, url, lines)
    streamed = client.get(f"/batches/{batch.id}/results", cast_to=httpx.Response)
    (only,) = [json.loads(x) for x in streamed.text.splitlines()]
    assert only == output_lines(client, batch.output_file_id)["b64"]


# --- completions


def test_completions_batch_through_chat_renders_text_completions(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    url = "/v1/completions"
    batch = run_batch(
        client,
        url,
        [
            line("c1", url, model=CHAT_ONLY, prompt="Once upon a time", max_tokens=20),
            line("c2", url, model=CHAT_ONLY, prompt=["one two three four"], max_tokens=2),
        ],
    )
    assert batch.status == "completed"
    out = output_lines(client, batch.output_file_id)
    first = Completion.model_validate(out["c1"]["response"]["body"])
    assert first.object == "text_completion" and first.model == CHAT_ONLY
    assert first.choices[0].text == "echo: Once upon a time"
    assert first.choices[0].finish_reason == "stop"
    assert first.usage is not None and first.usage.prompt_tokens == 4
    cut = Completion.model_validate(out["c2"]["response"]["body"])
    assert cut.choices[0].finish_reason == "length"
    assert paths(upstream) == {"/v1/chat/completions"}
    (call, _) = sorted(upstream.calls(), key=lambda c: c["fingerprint"])
    assert call["body"]["messages"] == [{"role": "user", "content": "Once upon a time"}]


def test_completions_batch_on_a_native_upstream_calls_its_completions(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    url = "/v1/completions"
    batch = run_batch(
        client, url, [line("c", url, model=NATIVE, prompt="alpha beta", stop=["beta"])]
    )
    body = output_lines(client, batch.output_file_id)["c"]["response"]["body"]
    assert Completion.model_validate(body).choices[0].text == "echo: alpha "
    (call,) = upstream.calls()
    assert call["path"] == "/v1/completions"
    assert call["body"]["prompt"] == "alpha beta" and call["body"]["max_tokens"] == 16


# --- responses


def test_responses_batch_through_chat_renders_response_objects(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    url = "/v1/responses"
    items = [
        {"role": "developer", "content": "Be brief."},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
    ]
    batch = run_batch(
        client,
        url,
        [
            line("s", url, model=CHAT_ONLY, input="plain words", instructions="Answer."),
            line(
                "items",
                url,
                model=CHAT_ONLY,
                input=items,
                max_output_tokens=50,
                metadata={"doc": "42", "run": "a"},
                user="user-7",
            ),
        ],
    )
    assert batch.status == "completed"
    out = output_lines(client, batch.output_file_id)
    plain = Response.model_validate(out["s"]["response"]["body"])
    assert plain.object == "response" and plain.status == "completed"
    assert plain.output_text == "echo: plain words"
    assert plain.instructions == "Answer." and plain.model == CHAT_ONLY
    assert plain.usage is not None and plain.usage.output_tokens == 3
    assert plain.usage.input_tokens_details.cached_tokens == 0
    with_items = Response.model_validate(out["items"]["response"]["body"])
    assert with_items.output_text == "echo: hi" and with_items.max_output_tokens == 50
    # The line's metadata and user come back on its Response, as OpenAI's do.
    assert with_items.metadata == {"doc": "42", "run": "a"} and with_items.user == "user-7"
    assert plain.metadata == {} and plain.user is None
    assert paths(upstream) == {"/v1/chat/completions"}
    call = next(c for c in upstream.calls() if c["fingerprint"] == "hi")
    assert call["body"]["messages"][0] == {"role": "system", "content": "Be brief."}


def test_responses_batch_on_a_native_upstream_keeps_reasoning_usage(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    url = "/v1/responses"
    batch = run_batch(
        client,
        url,
        [line("r", url, model=NATIVE, input="think hard", reasoning={"effort": "low"})],
    )
    body = output_lines(client, batch.output_file_id)["r"]["response"]["body"]
    response = Response.model_validate(body)
    assert response.output_text == "echo: think hard"
    assert [item.type for item in response.output] == ["reasoning", "message"]
    assert response.usage is not None
    assert response.usage.output_tokens_details.reasoning_tokens == 4
    assert response.reasoning is not None and response.reasoning.effort == "low"
    (call,) = upstream.calls()
    assert call["path"] == "/v1/responses" and call["body"]["reasoning"] == {"effort": "low"}
    assert batch.usage.output_tokens_details.reasoning_tokens == 4
    assert batch.usage.output_tokens == response.usage.output_tokens


def test_reasoning_effort_on_a_model_without_it_ends_errored_naming_it(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    url = "/v1/responses"
    lines = [line("r", url, model=CHAT_ONLY, input="think", reasoning={"effort": "high"})]
    batch = run_batch(client, url, lines)
    assert batch.status == "completed" and batch.output_file_id is None
    error = output_lines(client, batch.error_file_id)["r"]["response"]
    assert error["status_code"] == 400
    message = error["body"]["error"]["message"]
    assert repr(CHAT_ONLY) in message and "does not support reasoning effort" in message
    assert upstream.calls() == []


def test_a_batch_naming_several_models_has_no_single_model(client: openai.OpenAI) -> None:
    url = "/v1/responses"
    lines = [line("a", url, model=CHAT_ONLY, input="a"), line("b", url, model=NATIVE, input="b")]
    batch = run_batch(client, url, lines)
    assert batch.status == "completed" and batch.model is None


# --- bad lines: a failed batch naming each line, nothing stored


@pytest.mark.parametrize(
    ("url", "good", "bad"),
    [
        (
            "/v1/embeddings",
            {"model": NATIVE, "input": "ok"},
            [
                ({"input": "no model"}, "missing_required_parameter", "body.model"),
                ({"model": NATIVE, "input": ""}, "invalid_value", "body.input"),
                (
                    {"model": NATIVE, "input": "x", "encoding_format": "int8"},
                    "invalid_value",
                    "body.encoding_format",
                ),
            ],
        ),
        (
            "/v1/completions",
            {"model": CHAT_ONLY, "prompt": "ok"},
            [
                ({"prompt": "no model"}, "missing_required_parameter", "body.model"),
                (
                    {"model": CHAT_ONLY, "prompt": "x", "echo": True},
                    "unsupported_parameter",
                    "body.echo",
                ),
                ({"model": CHAT_ONLY, "prompt": "x", "n": 2}, "unsupported_parameter", "body.n"),
                (
                    {"model": CHAT_ONLY, "prompt": "x", "suffix": "y"},
                    "unsupported_parameter",
                    "body.suffix",
                ),
                (
                    {"model": CHAT_ONLY, "prompt": "x", "logprobs": 2},
                    "unsupported_parameter",
                    "body.logprobs",
                ),
            ],
        ),
        (
            "/v1/responses",
            {"model": CHAT_ONLY, "input": "ok"},
            [
                ({"input": "no model"}, "missing_required_parameter", "body.model"),
                (
                    {"model": CHAT_ONLY, "input": "x", "tools": [{"type": "web_search"}]},
                    "unsupported_parameter",
                    "body.tools[0].type",
                ),
                (
                    {"model": CHAT_ONLY, "input": "x", "previous_response_id": "resp_1"},
                    "unsupported_parameter",
                    "body.previous_response_id",
                ),
                (
                    {"model": CHAT_ONLY, "input": "x", "max_output_tokens": "9"},
                    "invalid_type",
                    "body.max_output_tokens",
                ),
            ],
        ),
    ],
)
def test_bad_lines_fail_the_batch_with_line_numbers_and_openai_codes(
    client: openai.OpenAI,
    server: harness.RunningServer,
    url: str,
    good: dict[str, Any],
    bad: list[tuple[dict[str, Any], str, str]],
) -> None:
    lines: list[dict[str, Any] | str] = [line("good", url, **good)]
    lines += [line(f"bad{i}", url, **body) for i, (body, _, _) in enumerate(bad)]
    lines.append({**line("wrong-url", url, **good), "url": "/v1/chat/completions"})
    lines.append("{not json")
    lines.append(line("good", url, **good))
    content = "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines).encode()
    file_id = client.files.create(file=("in.jsonl", content), purpose="batch").id
    batch = client.batches.create(
        input_file_id=file_id,
        endpoint=url,  # type: ignore[arg-type]
        completion_window="24h",
    )
    assert batch.status == "failed" and batch.errors is not None
    got = [(e.line, e.code, e.param) for e in batch.errors.data]
    want = [(i + 2, code, param) for i, (_, code, param) in enumerate(bad)]
    n = len(bad) + 2
    want += [
        (n, "url_mismatch", "url"),
        (n + 1, "invalid_json_line", None),
        (n + 2, "duplicate_custom_id", "custom_id"),
    ]
    assert got == want
    assert batch.request_counts is not None and batch.request_counts.total == 0
    assert list(server.store.iter_results(batch.id)) == []
    # The lines name one model (bad ones included): the failed batch shows it.
    assert batch.model == good["model"]
    assert client.batches.retrieve(batch.id).model == good["model"]


def test_a_failed_batch_whose_lines_name_several_models_has_no_model(
    client: openai.OpenAI,
) -> None:
    url = "/v1/responses"
    lines = [
        line("a", url, model=CHAT_ONLY, input="a"),
        line("b", url, model=NATIVE, input="b", stream=True),
    ]
    content = "\n".join(json.dumps(x) for x in lines).encode()
    file_id = client.files.create(file=("in.jsonl", content), purpose="batch").id
    batch = client.batches.create(input_file_id=file_id, endpoint=url, completion_window="24h")
    assert batch.status == "failed" and batch.model is None


def test_an_empty_file_fails_the_batch_with_empty_file(client: openai.OpenAI) -> None:
    file_id = client.files.create(file=("in.jsonl", b"\n\n"), purpose="batch").id
    batch = client.batches.create(
        input_file_id=file_id, endpoint="/v1/embeddings", completion_window="24h"
    )
    assert batch.status == "failed" and batch.errors is not None
    assert [(e.code, e.line) for e in batch.errors.data] == [("empty_file", None)]
