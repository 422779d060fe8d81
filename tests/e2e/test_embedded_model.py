"""The embedded SmolLM2 model, for real, through the whole server (no config:
the out-of-the-box default model)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from batchgate import config
from tests import harness

MODEL = config.DEFAULT_MODEL_NAME


def params(question: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "max_tokens": 24,
        "temperature": 0,
        "system": "You are a helpful assistant.",
        "messages": [{"role": "user", "content": question}],
        **extra,
    }


def test_a_real_batch_on_the_embedded_model(tmp_path: Path) -> None:
    settings = harness.make_settings(tmp_path, config.default_models())
    requests = [
        {"custom_id": "plain", "params": params("What is the capital of France?")},
        {"custom_id": "again", "params": params("What is the capital of France?")},
        {"custom_id": "short", "params": params("What is the capital of France?", max_tokens=4)},
        {
            "custom_id": "stopped",
            "params": params("What is the capital of France?", stop_sequences=[" "]),
        },
    ]
    with harness.serve(settings) as server, server.client() as client:
        assert [m["id"] for m in client.get("/v1/models").json()["data"]] == [MODEL]
        batch = client.post("/v1/batches", json={"requests": requests}).json()
        ended = server.wait_ended(batch["id"], timeout=300)
        body = client.get(f"/v1/batches/{batch['id']}").text
    assert ended["status"] == "completed"
    lines = {line["custom_id"]: line["result"] for line in map(json.loads, body.splitlines())}
    assert list(lines) == ["plain", "again", "short", "stopped"]
    messages = {custom_id: result["message"] for custom_id, result in lines.items()}
    plain = messages["plain"]
    text = plain["content"][0]["text"]
    assert "Paris" in text  # SmolLM2-135M knows this one
    assert plain["model"] == MODEL
    assert plain["stop_reason"] in {"end_turn", "max_tokens"}
    assert 0 < plain["usage"]["output_tokens"] <= 24
    # temperature 0 is deterministic, and the prompt is tokenized the same way
    assert messages["again"]["content"] == plain["content"]
    assert messages["again"]["usage"] == plain["usage"]
    short = messages["short"]
    assert short["stop_reason"] == "max_tokens"
    assert short["usage"]["output_tokens"] == 4
    assert short["usage"]["input_tokens"] == plain["usage"]["input_tokens"]
    stopped = messages["stopped"]
    assert stopped["stop_reason"] == "stop_sequence" and stopped["stop_sequence"] == " "
    assert " " not in stopped["content"][0]["text"]
    assert text.startswith(stopped["content"][0]["text"])
    usage = ended["usage"]
    assert usage["output_tokens"] == sum(m["usage"]["output_tokens"] for m in messages.values())
    assert ended["cost"] == 0.0  # the embedded model has no list price
