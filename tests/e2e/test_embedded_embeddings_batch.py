"""An OpenAI ``/v1/embeddings`` file batch on the embedded SmolLM2 model, for
real, through the whole server, with the official ``openai`` SDK (no config:
the out-of-the-box default model serves embeddings too)."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import openai
import pytest

from batchgate import config
from tests import harness

pytestmark = pytest.mark.slow

MODEL = config.DEFAULT_MODEL_NAME


def _line(custom_id: str, body: dict[str, object]) -> str:
    return json.dumps(
        {"custom_id": custom_id, "method": "POST", "url": "/v1/embeddings", "body": body}
    )


def test_an_embeddings_batch_on_the_embedded_model(tmp_path: Path) -> None:
    lines = [
        _line("one", {"model": MODEL, "input": "The cat sleeps on the mat."}),
        _line("same", {"model": MODEL, "input": "The cat sleeps on the mat."}),
        _line("many", {"model": MODEL, "input": ["Bonds rallied.", "Rain is coming."]}),
        _line("short", {"model": MODEL, "input": "Bonds rallied.", "dimensions": 32}),
    ]
    settings = harness.make_settings(tmp_path, config.default_models())
    with harness.serve(settings) as server:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.api_key)
        upload = client.files.create(
            file=("in.jsonl", io.BytesIO("\n".join(lines).encode())), purpose="batch"
        )
        batch = client.batches.create(
            input_file_id=upload.id, endpoint="/v1/embeddings", completion_window="24h"
        )
        ended = server.wait_ended(batch.id, timeout=300)
        assert ended["status"] == "completed", ended
        assert ended["output_file_id"] is not None
        output = client.files.content(ended["output_file_id"]).text
    results = {
        line["custom_id"]: line["response"]["body"] for line in map(json.loads, output.splitlines())
    }
    vectors = {
        custom_id: [item["embedding"] for item in body["data"]]
        for custom_id, body in results.items()
    }
    assert [len(v) for v in vectors["many"]] == [576, 576]
    assert vectors["one"] == vectors["same"]
    assert math.hypot(*vectors["one"][0]) == pytest.approx(1.0)
    assert len(vectors["short"][0]) == 32
    assert math.hypot(*vectors["short"][0]) == pytest.approx(1.0)
    assert results["many"]["usage"]["prompt_tokens"] > results["short"]["usage"]["prompt_tokens"]
    assert results["one"]["model"] == MODEL
