"""Running an OpenAI file batch with the official SDK, as the API and e2e
suites both do: upload the lines, create the batch, poll it to its end,
read its output file."""

from __future__ import annotations

import json
import time
from typing import Any

import openai

ENDED = {"completed", "failed", "cancelled", "expired"}


def line(custom_id: str, url: str, **body: Any) -> dict[str, Any]:
    return {"custom_id": custom_id, "method": "POST", "url": url, "body": body}


def run(
    client: openai.OpenAI, endpoint: str, lines: list[dict[str, Any]], timeout: float = 60
) -> Any:
    """The ended batch of ``lines`` on ``endpoint``."""
    content = "\n".join(json.dumps(item) for item in lines).encode()
    file_id = client.files.create(file=("in.jsonl", content), purpose="batch").id
    batch = client.batches.create(
        input_file_id=file_id,
        endpoint=endpoint,  # type: ignore[arg-type]
        completion_window="24h",
    )
    deadline = time.monotonic() + timeout
    while batch.status not in ENDED:
        assert time.monotonic() < deadline, f"batch still {batch.status}"
        time.sleep(0.05)
        batch = client.batches.retrieve(batch.id)
    return batch


def result_lines(client: openai.OpenAI, file_id: str | None) -> dict[str, dict[str, Any]]:
    """A result file's lines by custom_id."""
    assert file_id is not None
    lines = [json.loads(x) for x in client.files.content(file_id).text.splitlines()]
    return {item["custom_id"]: item for item in lines}


def completed_bodies(
    client: openai.OpenAI, endpoint: str, bodies: dict[str, dict[str, Any]], timeout: float = 300
) -> dict[str, Any]:
    """The output bodies, by custom_id, of a batch of ``bodies`` (request
    body by custom_id) that must complete with no error line."""
    lines = [line(cid, endpoint, **body) for cid, body in bodies.items()]
    batch = run(client, endpoint, lines, timeout=timeout)
    assert batch.status == "completed", batch
    assert batch.error_file_id is None, result_lines(client, batch.error_file_id)
    out = result_lines(client, batch.output_file_id)
    return {custom_id: item["response"]["body"] for custom_id, item in out.items()}
