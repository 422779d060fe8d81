"""Input limits over real HTTP, in every dialect: a 4xx (or, for an OpenAI
input file, a failed batch naming the line) that names the path, and
nothing stored."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest

from tests import harness
from tests.fakes.upstream import FakeUpstream

MODEL = "fake-chat"


@pytest.fixture
def server(tmp_path: Path, upstream: FakeUpstream) -> Iterator[harness.RunningServer]:
    models = {MODEL: harness.openai_model(MODEL, upstream.openai_base_url, max_context=1000)}
    settings = harness.make_settings(tmp_path, models)
    settings.limits = settings.limits.model_copy(
        update={"max_body_bytes": 20_000, "max_string_chars": 5_000, "max_messages": 10}
    )
    with harness.serve(settings, with_worker=False) as running:
        yield running


def params(**fields: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "max_tokens": 16,
        "messages": [{"role": "user", "content": "hi"}],
        **fields,
    }


def native_error(server: harness.RunningServer, requests: list[dict[str, Any]]) -> Any:
    with server.client() as client:
        response = client.post("/v1/batches", json={"requests": requests})
        assert client.get("/v1/batches").json()["data"] == []  # nothing stored
    return response


@pytest.mark.parametrize(
    ("request_", "param"),
    [
        ({"custom_id": "x" * 257, "params": params()}, "requests[0].custom_id"),
        ({"custom_id": "a\nb", "params": params()}, "requests[0].custom_id"),
        ({"custom_id": "a", "params": params(max_tokens=1001)}, "requests[0].params.max_tokens"),
        ({"custom_id": "a", "params": params(system="s" * 5001)}, "requests[0].params.system"),
        (
            {"custom_id": "a", "params": params(messages=[{"role": "user", "content": "x"}] * 11)},
            "requests[0].params.messages",
        ),
        ({"custom_id": "a", "params": params(model="m" * 201)}, "requests[0].params.model"),
    ],
)
def test_native_limits_are_400_naming_the_path(
    server: harness.RunningServer, request_: dict[str, Any], param: str
) -> None:
    response = native_error(server, [request_])
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    assert response.json()["error"]["message"].startswith(param)


def test_a_body_past_max_body_bytes_is_413(server: harness.RunningServer) -> None:
    requests = [{"custom_id": f"r{i}", "params": params()} for i in range(300)]
    response = native_error(server, requests)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


def test_anthropic_custom_id_pattern_and_limits_in_anthropics_envelope(
    server: harness.RunningServer,
) -> None:
    with server.anthropic(server.api_key, max_retries=0) as sdk:
        for custom_id, fields, where in [
            ("has.dot", {}, "requests[0].custom_id"),
            ("ok", {"max_tokens": 1001}, "requests[0].params.max_tokens"),
        ]:
            with pytest.raises(anthropic.BadRequestError) as raised:
                sdk.messages.batches.create(
                    requests=[{"custom_id": custom_id, "params": params(**fields)}]  # type: ignore[list-item]
                )
            body = raised.value.body
            assert isinstance(body, dict) and body["error"]["type"] == "invalid_request_error"
            assert where in body["error"]["message"]
        assert list(sdk.messages.batches.list()) == []


def test_openai_lines_past_a_limit_fail_the_batch_naming_line_and_param(
    server: harness.RunningServer,
) -> None:
    def line(custom_id: str, **body: Any) -> str:
        return json.dumps(
            {
                "custom_id": custom_id,
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], **body},
            }
        )

    long_text = [{"role": "user", "content": "x" * 5_001}]
    many = [{"role": ("user", "assistant")[i % 2], "content": "hi"} for i in range(11)]
    content = "\n".join(
        [
            line("fine"),
            line("tab\there"),
            line("big", max_tokens=1001),
            line("default"),
            line("long", messages=long_text),
            line("many", messages=many),
        ]
    )
    with server.openai(server.api_key, max_retries=0) as sdk:
        uploaded = sdk.files.create(
            file=("in.jsonl", io.BytesIO(content.encode())), purpose="batch"
        )
        batch = sdk.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    assert batch.status == "failed" and batch.errors is not None
    errors = [(e.line, e.param, e.code) for e in batch.errors.data or []]
    # Line 4 leaves max_tokens to the default, which the backend caps: not
    # refused. Each code is OpenAI's for that refusal.
    assert errors == [
        (2, "custom_id", "invalid_value"),
        (3, "body.max_tokens", "invalid_value"),
        (5, "body.messages[0].content", "string_above_max_length"),
        (6, "body.messages", "array_above_max_length"),
    ]


def test_an_upload_filename_is_kept_without_control_characters_and_within_512(
    server: harness.RunningServer,
) -> None:
    # Written by hand: client libraries percent-encode control characters.
    body = (
        b'--B\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
        b'--B\r\nContent-Disposition: form-data; name="file"; filename="a\x01b.jsonl"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n{}\r\n--B--\r\n"
    )
    with server.client() as client:
        odd = client.post(
            "/v1/files", content=body, headers={"content-type": "multipart/form-data; boundary=B"}
        )
    assert odd.status_code == 200, odd.text
    assert odd.json()["filename"] == "a_b.jsonl"
    with server.openai(server.api_key, max_retries=0) as sdk:
        long = sdk.files.create(file=("x" * 600 + ".jsonl", io.BytesIO(b"{}")), purpose="batch")
    assert len(long.filename) == 512 and long.filename.endswith(".jsonl")
