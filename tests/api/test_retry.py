"""Retrying the failed rows of an ended batch, in every dialect, over real HTTP
against the scripted fake upstream."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from tests import harness
from tests.fakes.upstream import FakeUpstream

MODEL = "fake-chat"


@pytest.fixture
def server(tmp_path: Path, upstream: FakeUpstream) -> Iterator[harness.RunningServer]:
    models = {MODEL: harness.openai_model(MODEL, upstream.openai_base_url)}
    # One attempt per request: a scripted 503 ends its request errored at once.
    settings = harness.make_settings(tmp_path, models, max_attempts=1)
    with harness.serve(settings) as running:
        yield running


def inline(custom_id: str) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "params": {
            "model": MODEL,
            "max_tokens": 16,
            "messages": [{"role": "user", "content": f"text {custom_id}"}],
        },
    }


def script_failures(upstream: FakeUpstream) -> None:
    """r1 and r3 are refused (400, not retryable), r4 meets a 503."""
    upstream.script_for("text r1", "400")
    upstream.script_for("text r3", "400")
    upstream.script_for("text r4", "503")


def results(server: harness.RunningServer, batch_id: str) -> dict[str, dict[str, Any]]:
    with server.client() as client:
        text = client.get(f"/v1/batches/{batch_id}").text
    return {line["custom_id"]: line["result"] for line in map(json.loads, text.splitlines())}


def test_retry_reruns_exactly_the_failed_rows(
    server: harness.RunningServer, upstream: FakeUpstream
) -> None:
    script_failures(upstream)
    with server.client() as client:
        parent = client.post(
            "/v1/batches",
            json={"requests": [inline(f"r{i}") for i in range(6)], "metadata": {"run": "7"}},
        ).json()
        server.wait_ended(parent["id"])
        before = len(upstream.calls())
        response = client.post(f"/v1/batches/{parent['id']}/retry")
    assert response.status_code == 200, response.text
    child = response.json()
    assert child["metadata"] == {"run": "7", "retry_of": parent["id"]}
    assert child["endpoint"] == parent["endpoint"]
    # The parent's input file holds all six rows; the retry names none.
    assert parent["input_file_id"] is not None and child["input_file_id"] is None
    assert server.wait_ended(child["id"])["request_counts"] == {
        "total": 3,
        "completed": 3,
        "failed": 0,
    }
    rerun = sorted(call["fingerprint"] for call in upstream.calls()[before:])
    assert rerun == ["text r1", "text r3", "text r4"]
    assert sorted(results(server, child["id"])) == ["r1", "r3", "r4"]


def test_retry_filtered_by_error_type_takes_only_those_rows(
    server: harness.RunningServer, upstream: FakeUpstream
) -> None:
    script_failures(upstream)
    with server.client() as client:
        parent = client.post(
            "/v1/batches", json={"requests": [inline(f"r{i}") for i in range(6)]}
        ).json()
        server.wait_ended(parent["id"])
        child = client.post(
            f"/v1/batches/{parent['id']}/retry", json={"error_types": ["api_error"]}
        ).json()
    server.wait_ended(child["id"])
    assert list(results(server, child["id"])) == ["r4"]


def test_retry_of_a_running_batch_is_refused(
    server: harness.RunningServer, upstream: FakeUpstream
) -> None:
    upstream.configure(latency_ms=2000)
    with server.client() as client:
        parent = client.post("/v1/batches", json={"requests": [inline("r0")]}).json()
        response = client.post(f"/v1/batches/{parent['id']}/retry")
        client.post(f"/v1/batches/{parent['id']}/cancel")
    assert response.status_code == 409
    assert "has not ended" in response.json()["error"]["message"]


def test_retry_of_a_batch_without_failures_is_refused(server: harness.RunningServer) -> None:
    with server.client() as client:
        parent = client.post("/v1/batches", json={"requests": [inline("r0")]}).json()
        server.wait_ended(parent["id"])
        response = client.post(f"/v1/batches/{parent['id']}/retry")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "nothing_to_retry"


def test_an_unknown_error_type_is_a_400_naming_the_entry(server: harness.RunningServer) -> None:
    with server.client() as client:
        parent = client.post("/v1/batches", json={"requests": [inline("r0")]}).json()
        server.wait_ended(parent["id"])
        response = client.post(
            f"/v1/batches/{parent['id']}/retry",
            json={"error_types": ["api_error", "bogus"]},
        )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "error_types[1]"


def test_openai_file_batch_retry_keeps_dialect_and_renders_result_files(
    server: harness.RunningServer, upstream: FakeUpstream
) -> None:
    upstream.script_for("text r1", "400")
    lines = [
        {
            "custom_id": f"r{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": MODEL, "messages": [{"role": "user", "content": f"text r{i}"}]},
        }
        for i in range(3)
    ]
    content = "\n".join(json.dumps(item) for item in lines).encode()
    with server.openai(server.api_key) as sdk:
        file_id = sdk.files.create(file=("in.jsonl", content), purpose="batch").id
        parent = sdk.batches.create(
            input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        server.wait_ended(parent.id)
        child = sdk.post(f"/batches/{parent.id}/retry", cast_to=openai.types.Batch, body={})
        assert child.endpoint == "/v1/chat/completions" and child.id != parent.id
        assert child.input_file_id is None and child.metadata == {"retry_of": parent.id}
        server.wait_ended(child.id)
        ended = sdk.batches.retrieve(child.id)
        assert ended.output_file_id is not None
        output = sdk.files.content(ended.output_file_id).text.splitlines()
    assert [json.loads(line)["custom_id"] for line in output] == ["r1"]


def wait_anthropic(sdk: anthropic.Anthropic, batch_id: str) -> None:
    harness.wait_until(
        lambda: sdk.messages.batches.retrieve(batch_id).processing_status == "ended",
        60,
        f"batch {batch_id} to end",
    )


def test_anthropic_batch_retry_lives_on_the_anthropic_path(
    server: harness.RunningServer, upstream: FakeUpstream
) -> None:
    upstream.script_for("text r0", "400")
    with server.anthropic(server.api_key) as sdk:
        parent = sdk.messages.batches.create(requests=[inline("r0"), inline("r1")])  # type: ignore[list-item]
        wait_anthropic(sdk, parent.id)
        response = sdk.post(
            f"/v1/messages/batches/{parent.id}/retry",
            cast_to=anthropic.types.messages.MessageBatch,
            body={},
        )
        assert response.id.startswith("msgbatch_")
        wait_anthropic(sdk, response.id)
        retried = list(sdk.messages.batches.results(response.id))
    assert [(item.custom_id, item.result.type) for item in retried] == [("r0", "succeeded")]
