"""Results so far: every dialect's results route answers while the batch runs,
with exactly the requests that have finished, and says it is incomplete."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from batchgate.domain.states import RESULT_STATES
from tests import harness
from tests.fakes.upstream import FakeUpstream

MODEL = "fake-chat"
COMPLETE = "x-batchgate-results-complete"
# Requests whose upstream call hangs far longer than any test: they stay
# running, so the set of finished requests is fixed while the test reads it.
HANG = {"kind": "hang", "hang_seconds": 120}


@pytest.fixture
def server(tmp_path: Path, upstream: FakeUpstream) -> Iterator[harness.RunningServer]:
    models = {MODEL: harness.openai_model(MODEL, upstream.openai_base_url)}
    with harness.serve(harness.make_settings(tmp_path, models, max_attempts=1)) as running:
        yield running


def params(text: str) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 16, "messages": [{"role": "user", "content": text}]}


def script_mixed(upstream: FakeUpstream) -> None:
    """ok-0, ok-1: succeed; bad: errors (400, not retried); slow-*: hang."""
    upstream.script_for("bad", "400")
    for text in ("slow-0", "slow-1"):
        upstream.script_for(text, HANG)


TEXTS = ["ok-0", "slow-0", "bad", "ok-1", "slow-1"]


def finished_in_store(server: harness.RunningServer, batch_id: str) -> dict[str, str]:
    """custom_id -> state of the batch's terminal rows, read from the store."""
    return {
        row.custom_id: row.state.value for row in server.store.iter_results(batch_id, RESULT_STATES)
    }


def wait_finished(server: harness.RunningServer, batch_id: str, count: int) -> dict[str, str]:
    def enough() -> dict[str, str] | None:
        finished = finished_in_store(server, batch_id)
        return finished if len(finished) >= count else None

    return harness.wait_until(enough, 30, f"{count} finished requests")


def lines(response: httpx.Response) -> list[dict[str, Any]]:
    return [json.loads(line) for line in response.text.splitlines()]


def test_native_results_while_running_are_the_finished_requests(
    server: harness.RunningServer, upstream: FakeUpstream
) -> None:
    script_mixed(upstream)
    with server.client() as http:
        body = {"requests": [{"custom_id": t, "params": params(t)} for t in TEXTS]}
        batch_id = http.post("/v1/batches", json=body).json()["id"]
        finished = wait_finished(server, batch_id, 3)
        response = http.get(f"/v1/batches/{batch_id}/results")
        assert response.status_code == 200
        assert response.headers[COMPLETE] == "false"
        got = {line["custom_id"]: line["result"]["type"] for line in lines(response)}
        assert got == finished == {"ok-0": "succeeded", "bad": "errored", "ok-1": "succeeded"}
        # Input order, as in the final results.
        assert [line["custom_id"] for line in lines(response)] == ["ok-0", "bad", "ok-1"]
        assert (
            http.get(f"/v1/batches/{batch_id}", headers={"accept": "*/*"})
            .headers["content-type"]
            .startswith("application/json")
        )  # the batch URL still shows the batch object


def test_native_results_filter_by_status(
    server: harness.RunningServer, upstream: FakeUpstream
) -> None:
    script_mixed(upstream)
    with server.client() as http:
        body = {"requests": [{"custom_id": t, "params": params(t)} for t in TEXTS]}
        batch_id = http.post("/v1/batches", json=body).json()["id"]
        wait_finished(server, batch_id, 3)
        ok = lines(http.get(f"/v1/batches/{batch_id}/results?status=succeeded"))
        bad = lines(http.get(f"/v1/batches/{batch_id}/results", params={"status": "errored"}))
        both = lines(http.get(f"/v1/batches/{batch_id}/results?status=errored,succeeded"))
    assert [line["custom_id"] for line in ok] == ["ok-0", "ok-1"]
    assert [(line["custom_id"], line["result"]["type"]) for line in bad] == [("bad", "errored")]
    assert [line["custom_id"] for line in both] == ["ok-0", "bad", "ok-1"]


def test_results_of_an_ended_batch_are_complete(
    server: harness.RunningServer, upstream: FakeUpstream
) -> None:
    script_mixed(upstream)
    with server.client() as http:
        body = {"requests": [{"custom_id": t, "params": params(t)} for t in TEXTS]}
        batch_id = http.post("/v1/batches", json=body).json()["id"]
        wait_finished(server, batch_id, 3)
        http.post(f"/v1/batches/{batch_id}/cancel")
        server.wait_ended(batch_id)
        response = http.get(f"/v1/batches/{batch_id}/results")
        final = http.get(f"/v1/batches/{batch_id}")
    assert response.headers[COMPLETE] == "true"
    assert response.text == final.text  # the same lines the batch URL streams once ended
    assert [line["result"]["type"] for line in lines(response)] == [
        "succeeded",
        "canceled",
        "errored",
        "succeeded",
        "canceled",
    ]


def test_unknown_status_filter_is_a_400_naming_the_parameter(
    server: harness.RunningServer,
) -> None:
    with server.client() as http:
        body = {"requests": [{"custom_id": "a", "params": params("a")}]}
        batch_id = http.post("/v1/batches", json=body).json()["id"]
        response = http.get(f"/v1/batches/{batch_id}/results?status=done")
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "status"
    assert "'done'" in response.json()["error"]["message"]


def test_openai_batch_results_so_far_through_the_sdk(
    server: harness.RunningServer, upstream: FakeUpstream
) -> None:
    script_mixed(upstream)
    content = "\n".join(
        json.dumps(
            {"custom_id": t, "method": "POST", "url": "/v1/chat/completions", "body": params(t)}
        )
        for t in TEXTS
    ).encode()
    with server.openai(server.api_key) as client:
        file_id = client.files.create(file=("in.jsonl", content), purpose="batch").id
        batch = client.batches.create(
            input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        finished = wait_finished(server, batch.id, 3)
        # OpenAI names no output file until the end: the running batch has none.
        assert client.batches.retrieve(batch.id).output_file_id is None
        response = client.get(f"/batches/{batch.id}/results", cast_to=httpx.Response)
    assert response.headers[COMPLETE] == "false"
    got = lines(response)
    assert {line["custom_id"] for line in got} == set(finished)
    by_id = {line["custom_id"]: line for line in got}
    # The output file's line shape for successes, the error's status for the rest.
    assert by_id["ok-0"]["response"]["status_code"] == 200
    assert by_id["ok-0"]["response"]["body"]["object"] == "chat.completion"
    assert by_id["bad"]["response"]["status_code"] == 400


def test_anthropic_results_while_processing_are_the_finished_requests(
    server: harness.RunningServer, upstream: FakeUpstream
) -> None:
    script_mixed(upstream)
    with server.anthropic(server.api_key) as client:
        created = client.messages.batches.create(
            requests=[{"custom_id": t, "params": params(t)} for t in TEXTS]  # type: ignore[misc]
        )
        finished = wait_finished(server, created.id, 3)
        assert client.messages.batches.retrieve(created.id).results_url is None
    with server.client(**{"x-api-key": server.api_key}) as http:
        response = http.get(f"/v1/messages/batches/{created.id}/results")
    assert response.status_code == 200
    assert response.headers[COMPLETE] == "false"
    got = {line["custom_id"]: line["result"]["type"] for line in lines(response)}
    assert got == finished
