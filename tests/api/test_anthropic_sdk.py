"""Anthropic's Message Batches API over real HTTP, driven by the official
``anthropic`` SDK, unmodified: only ``base_url`` and ``api_key`` change.

Two upstreams sit behind the server, both the scripted fake: one speaking
Anthropic's Messages API (the ``anthropic`` backend passes messages through)
and one speaking Chat Completions (the ``openai_compatible`` backend
translates both ways).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest
from anthropic.types.messages import MessageBatch

from batchgate import config
from tests import harness
from tests.fakes.upstream import FakeUpstream

ANTHROPIC_MODEL = "claude-fake"
OPENAI_MODEL = "openai-fake"
BOTH_MODELS = pytest.mark.parametrize("model", [ANTHROPIC_MODEL, OPENAI_MODEL])

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"query": {"type": "string"}},
        "required": ["query"],
    },
}


@pytest.fixture
def server(tmp_path: Path, upstream: FakeUpstream) -> Iterator[harness.RunningServer]:
    models = {
        ANTHROPIC_MODEL: config.ModelConfig(
            name=ANTHROPIC_MODEL, backend="anthropic", base_url=upstream.base_url, api_key_env=None
        ),
        OPENAI_MODEL: harness.openai_model(OPENAI_MODEL, upstream.openai_base_url),
    }
    with harness.serve(harness.make_settings(tmp_path, models)) as running:
        yield running


@pytest.fixture
def client(server: harness.RunningServer) -> Iterator[anthropic.Anthropic]:
    with server.anthropic(server.api_key, max_retries=0) as sdk:
        yield sdk


def request(custom_id: str, text: str, model: str = ANTHROPIC_MODEL, **params: Any) -> Any:
    return {
        "custom_id": custom_id,
        "params": {
            "model": model,
            "max_tokens": 256,
            "messages": [{"role": "user", "content": text}],
            **params,
        },
    }


def wait_ended(client: anthropic.Anthropic, batch_id: str, timeout: float = 30.0) -> MessageBatch:
    def ended() -> MessageBatch | None:
        batch = client.messages.batches.retrieve(batch_id)
        return batch if batch.processing_status == "ended" else None

    return harness.wait_until(ended, timeout, f"batch {batch_id} to end")


def run_batch(client: anthropic.Anthropic, requests: list[Any], timeout: float = 30.0) -> list[Any]:
    created = client.messages.batches.create(requests=requests)
    wait_ended(client, created.id, timeout)
    return list(client.messages.batches.results(created.id))


# -- the happy path, on both kinds of upstream --------------------------------


@BOTH_MODELS
def test_results_are_message_objects_in_submission_order(
    client: anthropic.Anthropic, server: harness.RunningServer, model: str
) -> None:
    created = client.messages.batches.create(
        requests=[request(f"req-{i}", f"hello number {i}", model) for i in range(3)]
    )
    assert created.id.startswith("msgbatch_") and created.type == "message_batch"
    assert created.processing_status == "in_progress" and created.results_url is None
    ended = wait_ended(client, created.id)
    assert ended.request_counts.succeeded == 3 and ended.ended_at is not None
    assert ended.results_url == f"{server.base_url}/v1/messages/batches/{created.id}/results"
    results = list(client.messages.batches.results(created.id))
    assert [line.custom_id for line in results] == ["req-0", "req-1", "req-2"]
    message = results[1].result.message
    assert message.role == "assistant" and message.stop_reason == "end_turn"
    assert message.content[0].text == "echo: hello number 1"
    assert message.usage.input_tokens > 0


@BOTH_MODELS
def test_counts_always_sum_to_the_number_of_requests(
    client: anthropic.Anthropic, model: str
) -> None:
    created = client.messages.batches.create(
        requests=[request(f"r{i}", f"count {i}", model) for i in range(5)]
    )
    seen = [created]
    while seen[-1].processing_status != "ended":
        seen.append(client.messages.batches.retrieve(created.id))
    for batch in seen:
        counts = batch.request_counts
        total = counts.processing + counts.succeeded + counts.errored
        assert total + counts.canceled + counts.expired == 5


@BOTH_MODELS
def test_tool_use_round_trip(
    client: anthropic.Anthropic, upstream: FakeUpstream, model: str
) -> None:
    question = "use a tool: weather in Paris"
    first = run_batch(client, [request("ask", question, model, tools=[WEATHER_TOOL])])
    reply = first[0].result.message
    assert reply.stop_reason == "tool_use"
    tool_use = next(block for block in reply.content if block.type == "tool_use")
    assert tool_use.name == "get_weather" and tool_use.input == {"query": question}

    # The client sends the assistant turn back as it got it, then the tool result.
    messages = [
        {"role": "user", "content": question},
        {"role": "assistant", "content": reply.content},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "sunny"}],
        },
    ]
    second = run_batch(
        client, [request("answer", "", model, tools=[WEATHER_TOOL], messages=messages)]
    )
    answer = second[0].result.message
    assert answer.stop_reason == "end_turn"
    assert answer.content[0].text == "tool result: sunny"


def test_openai_upstream_sees_tools_and_tool_messages_in_its_own_shape(
    client: anthropic.Anthropic, upstream: FakeUpstream
) -> None:
    question = "use a tool: weather in Rome"
    first = run_batch(client, [request("ask", question, OPENAI_MODEL, tools=[WEATHER_TOOL])])
    tool_use = first[0].result.message.content[0]
    messages = [
        {"role": "user", "content": question},
        {"role": "assistant", "content": [tool_use]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "rain"}],
        },
    ]
    run_batch(
        client, [request("answer", "", OPENAI_MODEL, tools=[WEATHER_TOOL], messages=messages)]
    )
    sent = upstream.calls(question)[-1]["body"]
    assert sent["tools"][0]["type"] == "function"
    assert sent["tools"][0]["function"]["name"] == "get_weather"
    assert sent["messages"][1]["tool_calls"][0]["id"] == tool_use.id
    assert sent["messages"][2] == {"role": "tool", "tool_call_id": tool_use.id, "content": "rain"}


def test_anthropic_upstream_thinking_blocks_come_back_as_is(client: anthropic.Anthropic) -> None:
    results = run_batch(
        client,
        [request("think", "ponder this", thinking={"type": "enabled", "budget_tokens": 1024})],
    )
    content = results[0].result.message.content
    assert [block.type for block in content] == ["thinking", "text"]
    assert content[0].thinking == "thinking about: ponder this"
    assert content[0].signature == "fake-sig"


def test_a_request_for_an_unknown_model_is_errored_with_an_error_object(
    client: anthropic.Anthropic,
) -> None:
    results = run_batch(client, [request("ok", "hi"), request("bad", "hi", model="nope")])
    assert [line.result.type for line in results] == ["succeeded", "errored"]
    error = results[1].result.error
    assert error.type == "error" and error.error.type == "invalid_request_error"
    assert "'nope'" in error.error.message


# -- list, cancel, delete -------------------------------------------------------


def test_list_pages_newest_first_with_after_and_before(client: anthropic.Anthropic) -> None:
    ids = [
        client.messages.batches.create(requests=[request("a", f"batch {i}")]).id for i in range(5)
    ]
    newest_first = list(reversed(ids))
    page = client.messages.batches.list(limit=2)
    assert [batch.id for batch in page.data] == newest_first[:2]
    assert page.has_more and page.first_id == ids[4] and page.last_id == ids[3]
    assert [batch.id for batch in client.messages.batches.list(limit=2)] == newest_first
    older = client.messages.batches.list(limit=2, after_id=ids[3])
    assert [batch.id for batch in older.data] == [ids[2], ids[1]]
    newer = client.messages.batches.list(limit=2, before_id=ids[1])
    assert [batch.id for batch in newer.data] == [ids[3], ids[2]] and newer.has_more


def test_cancel_ends_unfinished_requests_as_canceled(
    client: anthropic.Anthropic, upstream: FakeUpstream
) -> None:
    upstream.script_for("slow", {"kind": "hang", "hang_seconds": 2})
    created = client.messages.batches.create(requests=[request("slow", "slow")])
    canceling = client.messages.batches.cancel(created.id)
    assert canceling.processing_status == "canceling"
    assert canceling.cancel_initiated_at is not None
    ended = wait_ended(client, created.id)
    assert ended.request_counts.canceled == 1 and ended.request_counts.processing == 0
    results = list(client.messages.batches.results(created.id))
    assert [line.result.type for line in results] == ["canceled"]


def test_batch_cannot_be_deleted_before_it_ends(
    client: anthropic.Anthropic, upstream: FakeUpstream
) -> None:
    upstream.script_for("slow", {"kind": "hang", "hang_seconds": 2})
    created = client.messages.batches.create(requests=[request("slow", "slow")])
    with pytest.raises(anthropic.ConflictError) as info:
        client.messages.batches.delete(created.id)
    assert info.value.body["type"] == "error"
    assert info.value.body["error"]["type"] == "invalid_request_error"
    client.messages.batches.cancel(created.id)


def test_deleted_batch_is_gone(client: anthropic.Anthropic) -> None:
    created = client.messages.batches.create(requests=[request("a", "hi")])
    wait_ended(client, created.id)
    deleted = client.messages.batches.delete(created.id)
    assert (deleted.id, deleted.type) == (created.id, "message_batch_deleted")
    with pytest.raises(anthropic.NotFoundError) as info:
        client.messages.batches.retrieve(created.id)
    assert info.value.body["error"]["type"] == "not_found_error"
    assert list(client.messages.batches.list()) == []


# -- isolation and auth ---------------------------------------------------------


def test_anthropic_and_native_batches_do_not_see_each_other(
    client: anthropic.Anthropic, server: harness.RunningServer
) -> None:
    ours = client.messages.batches.create(requests=[request("a", "hi")])
    with server.client() as http:
        native = http.post("/v1/batches", json={"requests": [request("a", "hi")]}).json()
        assert http.get("/v1/batches").json()["data"][0]["id"] == native["id"]
        assert len(http.get("/v1/batches").json()["data"]) == 1
        assert http.get(f"/v1/batches/{ours.id}").status_code == 404
        assert http.post(f"/v1/batches/{ours.id}/cancel").status_code == 404
    assert [batch.id for batch in client.messages.batches.list()] == [ours.id]
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve(native["id"])


def test_wrong_api_key_is_an_authentication_error(server: harness.RunningServer) -> None:
    sdk = server.anthropic("bg-wrong", max_retries=0)
    with sdk, pytest.raises(anthropic.AuthenticationError) as info:
        sdk.messages.batches.list()
    assert info.value.body["error"]["type"] == "authentication_error"


# -- bad input ------------------------------------------------------------------


def _without_max_tokens() -> Any:
    bad = request("b", "hi")
    del bad["params"]["max_tokens"]
    return bad


@pytest.mark.parametrize(
    ("bad", "path"),
    [
        (request("has space", "hi"), "requests[1].custom_id"),
        (request("a", "hi"), "duplicate custom_id 'a' at requests[1]"),
        (_without_max_tokens(), "requests[1].params.max_tokens"),
        (
            request("b", "", messages=[{"role": "user", "content": [{"type": "video"}]}]),
            "requests[1].params.messages[0].content[0]",
        ),
    ],
    ids=["bad-custom-id", "duplicate-custom-id", "missing-max-tokens", "unknown-block-type"],
)
def test_bad_input_is_a_400_naming_the_path_and_stores_nothing(
    client: anthropic.Anthropic, bad: Any, path: str
) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.batches.create(requests=[request("a", "hi"), bad])
    body = info.value.body
    assert isinstance(body, dict) and set(body) == {"type", "error"}
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert path in body["error"]["message"]
    assert list(client.messages.batches.list()) == []


def test_results_stream_as_jsonl_for_a_raw_client_with_anthropic_headers(
    client: anthropic.Anthropic, server: harness.RunningServer
) -> None:
    created = client.messages.batches.create(requests=[request("x", "hi"), request("y", "yo")])
    wait_ended(client, created.id)
    headers = {"x-api-key": server.api_key, "anthropic-version": "2023-06-01"}
    with server.http_client(base_url=server.base_url, headers=headers) as http:
        response = http.get(f"/v1/messages/batches/{created.id}/results")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-jsonl"
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert [(line["custom_id"], line["result"]["type"]) for line in lines] == [
        ("x", "succeeded"),
        ("y", "succeeded"),
    ]


@pytest.mark.parametrize("limit", [0, 1001])
def test_list_limit_outside_1_to_1000_is_a_400(client: anthropic.Anthropic, limit: int) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.batches.list(limit=limit)
    assert info.value.body["error"]["type"] == "invalid_request_error"
