"""The one capability check at submit, for a plugin backend as for a
built-in: what the model lacks errors the request when it is stored, a
``max_tokens`` beyond its context is a 400 naming the line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from batchgate import config
from tests import harness, plugins

MODEL = "plug"
TOOL = {"name": "f", "input_schema": {"type": "object"}}


def params(**extra: object) -> dict[str, object]:
    return {"model": MODEL, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]} | (
        extra
    )


@pytest.fixture
def server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store_url: str
) -> Iterator[harness.RunningServer]:
    """A server (on SQLite, then PostgreSQL) whose one model is served by a
    plugin that declares, through its entry point, no tool use and a
    100-token context."""
    plugins.install(tmp_path, monkeypatch, "bg_declaring", plugins.DECLARING, "bg_declaring")
    models = {MODEL: config.ModelConfig(name=MODEL, backend="bg_declaring")}
    settings = harness.make_settings(tmp_path, models, database_url=store_url)
    with harness.serve(settings) as running:
        yield running


def test_what_a_plugin_model_lacks_errors_the_request_when_it_is_stored(
    server: harness.RunningServer,
) -> None:
    with server.client() as client:
        created = client.post(
            "/v1/batches", json={"requests": [{"custom_id": "t", "params": params(tools=[TOOL])}]}
        )
        assert created.status_code == 200
        batch = created.json()
        # Ended in the create call itself: no worker ever saw the request.
        assert batch["status"] == "completed"
        assert batch["request_counts"] == {"total": 1, "completed": 0, "failed": 1}
        (line,) = [
            json.loads(x) for x in client.get(f"/v1/batches/{batch['id']}").text.splitlines()
        ]
    assert line["result"]["type"] == "errored"
    message = line["result"]["error"]["error"]["message"]
    assert message.startswith(f"model {MODEL!r} does not support tool use")


def test_the_rest_of_the_batch_runs(server: harness.RunningServer) -> None:
    with server.client() as client:
        batch = client.post(
            "/v1/batches",
            json={
                "requests": [
                    {"custom_id": "tools", "params": params(tools=[TOOL])},
                    {"custom_id": "plain", "params": params()},
                ]
            },
        ).json()
        server.wait_ended(batch["id"])
        text = client.get(f"/v1/batches/{batch['id']}").text
    by_id = {x["custom_id"]: x["result"]["type"] for x in map(json.loads, text.splitlines())}
    assert by_id == {"tools": "errored", "plain": "succeeded"}


def test_max_tokens_beyond_a_plugin_models_context_is_a_400_naming_the_line(
    server: harness.RunningServer,
) -> None:
    with server.client() as client:
        refused = client.post(
            "/v1/batches",
            json={
                "requests": [
                    {"custom_id": "ok", "params": params()},
                    {"custom_id": "big", "params": params(max_tokens=101)},
                ]
            },
        )
        assert refused.status_code == 400
        error = refused.json()["error"]
        assert error["param"] == "requests[1].params.max_tokens"
        assert "context window of 100 tokens" in error["message"]
        assert client.get("/v1/batches").json()["data"] == []


def test_an_openai_file_line_the_model_cannot_serve_goes_to_the_error_file(
    server: harness.RunningServer,
) -> None:
    def line(custom_id: str, **body: object) -> bytes:
        messages = [{"role": "user", "content": "hi"}]
        return json.dumps(
            {
                "custom_id": custom_id,
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {"model": MODEL, "messages": messages, **body},
            }
        ).encode()

    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    # The plain line leaves max_tokens to the default (4096), above the
    # 100-token window: the backend caps it, nothing refuses it.
    content = line("tools", tools=[tool]) + b"\n" + line("plain") + b"\n"
    with server.openai() as client:
        uploaded = client.files.create(file=("in.jsonl", content), purpose="batch")
        batch = client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        ended = server.wait_ended(batch.id)
        assert ended["request_counts"] == {"total": 2, "completed": 1, "failed": 1}
        assert ended["error_file_id"] is not None
        errors_text = client.files.content(ended["error_file_id"]).text
    (failed,) = [json.loads(x) for x in errors_text.splitlines()]
    assert failed["custom_id"] == "tools"
    assert failed["response"]["status_code"] == 400
    assert "does not support tool use" in failed["response"]["body"]["error"]["message"]


def test_a_dry_run_counts_no_tokens_for_a_request_its_model_cannot_serve(
    server: harness.RunningServer,
) -> None:
    with server.client() as client:

        def estimate(*requests: dict[str, object]) -> dict[str, object]:
            body = {
                "requests": [{"custom_id": str(i), "params": p} for i, p in enumerate(requests)]
            }
            answer: dict[str, object] = client.post(
                "/v1/batches", params={"dry_run": "true"}, json=body
            ).json()
            return answer

        plain = estimate(params())
        both = estimate(params(), params(tools=[TOOL]))
    assert both["request_count"] == 2
    # What create would hold against the quota: the plain request's tokens alone.
    assert both["input_tokens"] == plain["input_tokens"]
    assert both["max_output_tokens"] == plain["max_output_tokens"]
