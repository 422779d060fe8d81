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
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[harness.RunningServer]:
    """A server whose one model is served by a plugin that declares, through
    its entry point, no tool use and a 100-token context."""
    plugins.install(tmp_path, monkeypatch, "bg_declaring", plugins.DECLARING, "bg_declaring")
    models = {MODEL: config.ModelConfig(name=MODEL, backend="bg_declaring")}
    with harness.serve(harness.make_settings(tmp_path, models)) as running:
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
