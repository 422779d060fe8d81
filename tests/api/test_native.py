"""The native dialect over real HTTP, against a fake OpenAI-compatible upstream."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from batchgate.services.keys import KeyService
from tests import harness
from tests.fakes.upstream import FakeUpstream

MODEL = harness.FAKE_MODEL


def params(text: str, **extra: object) -> dict[str, object]:
    return {
        "model": MODEL,
        "max_tokens": 64,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


@pytest.fixture
def thinking_server(tmp_path: Path, upstream: FakeUpstream) -> Iterator[harness.RunningServer]:
    """The shared server's model, on an upstream that takes reasoning_effort
    (a model without it ends a request asking for thinking errored)."""
    model = harness.openai_model(MODEL, upstream.openai_base_url, supports_reasoning_effort=True)
    with harness.serve(harness.make_settings(tmp_path, {MODEL: model})) as running:
        yield running


def test_upstream_example_snippet_gets_one_result_line_per_request(
    thinking_server: harness.RunningServer,
) -> None:
    # The snippet from the issue, as a user would write it with `requests`.
    server = thinking_server
    headers = {"Authorization": f"Bearer {server.api_key}"}
    full = {
        "metadata": {"user_id": "13803d75-b4b5-4c3e-b2a2-6f21399b021b"},
        "stop_sequences": ["\n\nHuman:"],
        "system": "Today's date is 2024-01-01.",
        "temperature": 1,
        "tool_choice": None,
        "tools": [],
        "top_k": 1,
        "top_p": 1,
        "thinking": {"budget_tokens": 1024, "type": "enabled"},
    }
    body = {
        "requests": [
            {"custom_id": f"my-custom-id-{i}", "params": params(f"Hello {i}", **full)}
            for i in range(3)
        ]
    }
    created = requests.post(f"{server.url}/v1/batches", json=body, headers=headers, timeout=30)
    assert created.status_code == 200, created.text
    batch = created.json()
    assert batch["batch_id"] == batch["id"] == batch["batch"]["id"]
    assert batch["file"]["purpose"] == "batch" and batch["file"]["filename"] == "batch.jsonl"
    server.wait_ended(batch["id"])
    response = requests.get(f"{server.url}/v1/batches/{batch['id']}", headers=headers, timeout=30)
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in response.text.splitlines() if line]
    assert [line["custom_id"] for line in lines] == [f"my-custom-id-{i}" for i in range(3)]
    assert all(line["result"]["type"] == "succeeded" for line in lines)
    message = lines[0]["result"]["message"]
    assert message["role"] == "assistant"
    assert [block["type"] for block in message["content"]] == ["thinking", "text"]
    assert message["usage"]["input_tokens"] > 0


def test_thinking_on_a_model_without_reasoning_control_is_dropped(
    server: harness.RunningServer, upstream: FakeUpstream
) -> None:
    # DESIGN.md section 4: an optional param the backend cannot honour is
    # dropped; the documented example sends `thinking` to any model.
    headers = {"Authorization": f"Bearer {server.api_key}"}
    thinking = {"budget_tokens": 1024, "type": "enabled"}
    body = {"requests": [{"custom_id": "t", "params": params("Hello", thinking=thinking)}]}
    created = requests.post(f"{server.url}/v1/batches", json=body, headers=headers, timeout=30)
    assert created.status_code == 200, created.text
    server.wait_ended(created.json()["id"])
    response = requests.get(
        f"{server.url}/v1/batches/{created.json()['id']}", headers=headers, timeout=30
    )
    (line,) = [json.loads(x) for x in response.text.splitlines() if x]
    assert line["result"]["type"] == "succeeded"
    assert [block["type"] for block in line["result"]["message"]["content"]] == ["text"]
    (call,) = upstream.calls()
    assert "reasoning_effort" not in call["body"]


def test_accept_json_gets_the_batch_object_with_usage_and_cost(
    server: harness.RunningServer,
) -> None:
    with server.client() as client:
        batch = client.post(
            "/v1/batches",
            json={"requests": [{"custom_id": "a", "params": params("one two three")}]},
        ).json()
    ended = server.wait_ended(batch["id"])
    assert ended["status"] == "completed"
    assert ended["request_counts"] == {"total": 1, "completed": 1, "failed": 0}
    usage = ended["usage"]
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"] > 0
    expected = (usage["input_tokens"] * 2.0 + usage["output_tokens"] * 6.0) / 1e6 * 0.5
    assert ended["cost"] == pytest.approx(expected)


def test_unknown_model_errors_that_request_naming_the_configured_ones(
    server: harness.RunningServer,
) -> None:
    with server.client() as client:
        batch = client.post(
            "/v1/batches",
            json={
                "requests": [
                    {"custom_id": "good", "params": params("hi")},
                    {"custom_id": "bad", "params": {**params("hi"), "model": "nope"}},
                ]
            },
        ).json()
        server.wait_ended(batch["id"])
        lines = [json.loads(x) for x in client.get(f"/v1/batches/{batch['id']}").text.splitlines()]
    by_id = {line["custom_id"]: line["result"] for line in lines}
    assert by_id["good"]["type"] == "succeeded"
    assert by_id["bad"]["type"] == "errored"
    message = by_id["bad"]["error"]["error"]["message"]
    assert "'nope'" in message and MODEL in message


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        (b"not json", None),
        (b'{"requests": []}', "requests"),
        (
            b'{"requests": [{"custom_id": "a", "params": {"model": "m", "max_tokens": "x", '
            b'"messages": [{"role": "user", "content": "hi"}]}}]}',
            "requests[0].params.max_tokens",
        ),
    ],
)
def test_bad_input_is_a_400_in_openai_envelope_and_stores_nothing(
    server: harness.RunningServer, payload: bytes, param: str | None
) -> None:
    with server.client() as client:
        response = client.post(
            "/v1/batches", content=payload, headers={"content-type": "application/json"}
        )
        assert response.status_code == 400
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert error["param"] == param
        assert client.get("/v1/batches").json()["data"] == []


def test_duplicate_custom_id_is_named_with_its_index(server: harness.RunningServer) -> None:
    with server.client() as client:
        response = client.post(
            "/v1/batches",
            json={
                "requests": [
                    {"custom_id": "x", "params": params("a")},
                    {"custom_id": "x", "params": params("b")},
                ]
            },
        )
    assert response.status_code == 400
    assert "'x'" in response.json()["error"]["message"]
    assert "requests[1]" in response.json()["error"]["message"]


def test_missing_or_revoked_key_is_401(server: harness.RunningServer) -> None:
    assert requests.get(f"{server.url}/v1/batches", timeout=10).status_code == 401
    other = server.new_key("temp")
    with server.client(other) as client:
        assert client.get("/v1/batches").status_code == 200
        KeyService(server.store).revoke_by_id_or_name("temp")
        response = client.get("/v1/batches")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_x_api_key_header_is_accepted(server: harness.RunningServer) -> None:
    response = requests.get(
        f"{server.url}/v1/models", headers={"x-api-key": server.api_key}, timeout=10
    )
    assert response.status_code == 200
    assert [model["id"] for model in response.json()["data"]] == [MODEL]


def test_another_key_sees_nothing_of_the_first_keys_batches(server: harness.RunningServer) -> None:
    with server.client() as client:
        batch = client.post(
            "/v1/batches", json={"requests": [{"custom_id": "a", "params": params("hi")}]}
        ).json()
    with server.client(server.new_key("intruder")) as other:
        assert other.get(f"/v1/batches/{batch['id']}").status_code == 404
        assert other.post(f"/v1/batches/{batch['id']}/cancel").status_code == 404
        assert other.get("/v1/batches").json()["data"] == []


def test_list_is_newest_first_and_paginates(server: harness.RunningServer) -> None:
    with server.client() as client:
        ids = [
            client.post(
                "/v1/batches", json={"requests": [{"custom_id": "a", "params": params(f"hi {i}")}]}
            ).json()["id"]
            for i in range(3)
        ]
        page = client.get("/v1/batches", params={"limit": 2}).json()
        assert [b["id"] for b in page["data"]] == [ids[2], ids[1]] and page["has_more"]
        rest = client.get("/v1/batches", params={"limit": 2, "after": page["last_id"]}).json()
    assert [b["id"] for b in rest["data"]] == [ids[0]] and not rest["has_more"]


def test_cancel_mid_batch_keeps_finished_results_and_counts_add_up(
    server: harness.RunningServer, upstream: FakeUpstream
) -> None:
    upstream.configure(latency_ms=200)
    n = 40
    with server.client() as client:
        batch = client.post(
            "/v1/batches",
            json={
                "requests": [{"custom_id": f"c{i}", "params": params(f"q{i}")} for i in range(n)]
            },
        ).json()
        harness.wait_until(
            lambda: (
                client.get(
                    f"/v1/batches/{batch['id']}", headers={"accept": "application/json"}
                ).json()["request_counts"]["completed"]
                >= 8
            ),
            10,
            "eight completed requests",
        )
        cancelled = client.post(f"/v1/batches/{batch['id']}/cancel").json()
        assert cancelled["status"] == "cancelling"
        ended = server.wait_ended(batch["id"])
        lines = [
            json.loads(x) for x in client.get(f"/v1/batches/{batch['id']}").text.split("\n") if x
        ]
    assert ended["status"] == "cancelled"
    succeeded = sum(1 for line in lines if line["result"]["type"] == "succeeded")
    canceled = sum(1 for line in lines if line["result"]["type"] == "canceled")
    assert succeeded >= 8 and canceled >= 1
    assert succeeded + canceled == n == len(lines)
    counts = ended["request_counts"]
    assert counts["completed"] == succeeded and counts["completed"] + counts["failed"] == n


def test_a_model_without_tool_use_errors_a_request_with_tools_and_never_sends_it(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    models = {
        "no-tools": harness.openai_model("no-tools", upstream.openai_base_url, supports_tools=False)
    }
    tool = {"name": "lookup", "input_schema": {"type": "object"}}
    with harness.serve(harness.make_settings(tmp_path, models)) as running:
        with running.client() as client:
            batch = client.post(
                "/v1/batches",
                json={
                    "requests": [
                        {
                            "custom_id": "with-tools",
                            "params": {**params("look it up", tools=[tool]), "model": "no-tools"},
                        },
                        {"custom_id": "plain", "params": {**params("hello"), "model": "no-tools"}},
                    ]
                },
            ).json()
        running.wait_ended(batch["id"])
        with running.client() as client:
            lines = [
                json.loads(x) for x in client.get(f"/v1/batches/{batch['id']}").text.splitlines()
            ]
    results = {line["custom_id"]: line["result"] for line in lines}
    assert results["plain"]["type"] == "succeeded"
    assert results["with-tools"]["type"] == "errored"
    assert "does not support tool use" in results["with-tools"]["error"]["error"]["message"]
    sent = [call["fingerprint"] for call in upstream.calls()]
    assert "hello" in sent and "look it up" not in sent
