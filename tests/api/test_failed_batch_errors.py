"""A file batch with many bad lines, on SQLite and PostgreSQL: the batch
object keeps the first 100 line errors with the count of all (20k bad lines
made a 3.3 MB object on every GET and list), and every error stays
readable at ``GET /v1/batches/{id}/errors``."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests import harness

MODEL = "fake-chat"
KEPT = 100


@pytest.fixture
def server(server_on_each_store: harness.RunningServer) -> harness.RunningServer:
    return server_on_each_store


def failed_batch(client: httpx.Client, bad_lines: int) -> tuple[dict[str, Any], str]:
    good = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    lines = [
        {"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions", "body": good}
        for i in range(3)
    ]
    lines += [{"custom_id": f"bad{i}", "method": "GET"} for i in range(bad_lines)]
    content = "\n".join(json.dumps(line) for line in lines).encode()
    uploaded = client.post(
        "/v1/files", files={"file": ("in.jsonl", content)}, data={"purpose": "batch"}
    )
    file_id: str = uploaded.json()["id"]
    response = client.post(
        "/v1/batches",
        json={
            "input_file_id": file_id,
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
        },
    )
    assert response.status_code == 200, response.text
    batch: dict[str, Any] = response.json()
    assert batch["status"] == "failed"
    return batch, file_id


def all_errors(client: httpx.Client, batch_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/v1/batches/{batch_id}/errors")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    return [json.loads(line) for line in response.text.splitlines()]


def test_a_batch_keeps_the_first_errors_and_their_count_and_lists_all_on_its_errors_route(
    server: harness.RunningServer,
) -> None:
    with server.client() as client:
        batch, file_id = failed_batch(client, 250)
        errors = batch["errors"]
        assert len(errors["data"]) == KEPT
        assert errors["total"] == 250 and errors["has_more"] is True
        assert [e["line"] for e in errors["data"]] == list(range(4, 4 + KEPT))
        again = client.get(f"/v1/batches/{batch['id']}", headers={"accept": "application/json"})
        assert again.json()["errors"] == errors
        listed = client.get("/v1/batches").json()["data"][0]
        assert len(listed["errors"]["data"]) == KEPT
        every = all_errors(client, batch["id"])
        assert [e["line"] for e in every] == list(range(4, 254))
        assert every[:KEPT] == errors["data"]
        # The full list is read again from the input file: gone with it.
        assert client.delete(f"/v1/files/{file_id}").status_code == 200
        assert client.get(f"/v1/batches/{batch['id']}/errors").status_code == 404
        assert len(client.get(f"/v1/batches/{batch['id']}").json()["errors"]["data"]) == KEPT


def test_a_batch_with_few_errors_keeps_them_all(server: harness.RunningServer) -> None:
    with server.client() as client:
        batch, file_id = failed_batch(client, 2)
        assert batch["errors"]["total"] == 2 and batch["errors"]["has_more"] is False
        assert client.delete(f"/v1/files/{file_id}").status_code == 200
        assert all_errors(client, batch["id"]) == batch["errors"]["data"]
