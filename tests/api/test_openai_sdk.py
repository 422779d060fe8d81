"""The OpenAI dialect over real HTTP, driven by the official ``openai`` SDK
(unmodified: only base_url and api_key), against a fake upstream."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from batchgate import config
from tests import harness
from tests.fakes.upstream import FakeUpstream

MODEL = "fake-chat"
ENDPOINT = "/v1/chat/completions"


def _serve(
    tmp_path: Path, upstream: FakeUpstream, **limits: int
) -> Iterator[harness.RunningServer]:
    models = {MODEL: harness.openai_model(MODEL, upstream.openai_base_url)}
    settings = harness.make_settings(tmp_path, models)
    settings.limits = config.LimitsSettings(**limits)
    with harness.serve(settings) as running:
        yield running


@pytest.fixture
def server(tmp_path: Path, upstream: FakeUpstream) -> Iterator[harness.RunningServer]:
    yield from _serve(tmp_path, upstream)


@pytest.fixture
def client(server: harness.RunningServer) -> Iterator[openai.OpenAI]:
    with server.openai(server.api_key, max_retries=0) as sdk:
        yield sdk


def line(custom_id: str, text: str = "hello", **body: Any) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": ENDPOINT,
        "body": {
            "model": MODEL,
            "max_tokens": 32,
            "messages": [{"role": "user", "content": text}],
            **body,
        },
    }


def jsonl(*items: dict[str, Any] | str) -> bytes:
    return "\n".join(item if isinstance(item, str) else json.dumps(item) for item in items).encode()


def upload(client: openai.OpenAI, content: bytes, purpose: str = "batch") -> str:
    return client.files.create(file=("input.jsonl", content), purpose=purpose).id  # type: ignore[arg-type]


def create(client: openai.OpenAI, file_id: str, **extra: Any) -> Any:
    return client.batches.create(
        input_file_id=file_id, endpoint=ENDPOINT, completion_window="24h", **extra
    )


def wait(client: openai.OpenAI, batch_id: str, timeout: float = 60) -> Any:
    def ended() -> Any:
        batch = client.batches.retrieve(batch_id)
        return batch if batch.status in {"completed", "failed", "cancelled", "expired"} else None

    return harness.wait_until(ended, timeout, f"batch {batch_id} to end")


def lines_of(client: openai.OpenAI, file_id: str) -> list[dict[str, Any]]:
    return [json.loads(x) for x in client.files.content(file_id).text.splitlines()]


def test_file_batch_completes_with_one_output_line_per_request(client: openai.OpenAI) -> None:
    file_id = upload(client, jsonl(*(line(f"r{i}", f"question {i}") for i in range(3))))
    batch = wait(client, create(client, file_id, metadata={"run": "1"}).id)
    assert batch.status == "completed" and batch.metadata == {"run": "1"}
    assert batch.request_counts is not None and batch.request_counts.completed == 3
    assert batch.error_file_id is None
    out = lines_of(client, batch.output_file_id)
    assert [x["custom_id"] for x in out] == ["r0", "r1", "r2"]
    first = out[0]
    assert first["error"] is None and first["response"]["status_code"] == 200
    body = first["response"]["body"]
    assert body["object"] == "chat.completion" and body["model"] == MODEL
    assert body["choices"][0]["message"]["content"] == "echo: question 0"
    assert body["usage"]["total_tokens"] > 0


def test_failed_requests_go_to_the_error_file_with_status_and_error_body(
    client: openai.OpenAI,
) -> None:
    bad_model = line("bad", model="nobody-serves-this")
    file_id = upload(client, jsonl(line("good"), bad_model))
    batch = wait(client, create(client, file_id).id)
    assert [x["custom_id"] for x in lines_of(client, batch.output_file_id)] == ["good"]
    (error_line,) = lines_of(client, batch.error_file_id)
    assert error_line["custom_id"] == "bad" and error_line["error"] is None
    assert error_line["response"]["status_code"] == 400
    assert "nobody-serves-this" in error_line["response"]["body"]["error"]["message"]


def test_result_files_are_listed_and_report_their_true_size(client: openai.OpenAI) -> None:
    file_id = upload(client, jsonl(line("a"), line("b", model="nope")))
    batch = wait(client, create(client, file_id).id)
    listed = {f.id: f for f in client.files.list(purpose="batch_output")}
    assert set(listed) == {batch.output_file_id, batch.error_file_id}
    for result_id in (batch.output_file_id, batch.error_file_id):
        described = client.files.retrieve(result_id)
        assert described.purpose == "batch_output"
        assert described.bytes == len(client.files.content(result_id).content)


def test_input_file_with_bad_lines_fails_the_batch_naming_every_bad_line(
    client: openai.OpenAI,
) -> None:
    content = jsonl(
        line("ok-1"),
        "{not json",
        "",
        {**line("wrong-url"), "url": "/v1/embeddings"},
        line("ok-1"),
        line("bad-body", max_tokens="many"),
        line("ok-2"),
    )
    batch = create(client, upload(client, content))  # 200, like OpenAI: the batch fails
    assert batch.status == "failed" and batch.failed_at is not None
    errors = [(e.line, e.code, e.param) for e in batch.errors.data]
    assert errors == [
        (2, "invalid_json_line", None),
        (4, "url_mismatch", "url"),
        (5, "duplicate_custom_id", "custom_id"),
        (6, "invalid_type", "body.max_tokens"),
    ]
    assert batch.request_counts is not None and batch.request_counts.total == 0
    assert client.batches.retrieve(batch.id).status == "failed"


def test_list_paginates_through_every_batch_with_auto_pagination(client: openai.OpenAI) -> None:
    file_id = upload(client, jsonl(line("a")))
    ids = [create(client, file_id).id for _ in range(5)]
    first = client.batches.list(limit=2)
    assert [b.id for b in first.data] == ids[::-1][:2] and first.has_more
    assert [b.id for b in client.batches.list(limit=2)] == ids[::-1]


def test_cancel_ends_cancelled_with_unrun_requests_in_the_error_file(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    upstream.configure(latency_ms=300)
    file_id = upload(client, jsonl(*(line(f"c{i}") for i in range(30))))
    batch = create(client, file_id)
    assert client.batches.cancel(batch.id).status == "cancelling"
    ended = wait(client, batch.id)
    assert ended.status == "cancelled"
    cancelled = [x for x in lines_of(client, ended.error_file_id) if x["error"]]
    assert cancelled and all(x["error"]["code"] == "batch_cancelled" for x in cancelled)
    assert all(x["response"] is None for x in cancelled)
    assert ended.request_counts.completed + ended.request_counts.failed == 30


def test_expired_requests_are_in_the_error_file_as_batch_expired(
    tmp_path: Path, upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    upstream.configure(latency_ms=5000)
    models = {MODEL: harness.openai_model(MODEL, upstream.openai_base_url)}
    settings = harness.make_settings(tmp_path, models)
    settings.completion_window_seconds = 30
    with (
        harness.serve(settings) as running,
        running.openai(running.api_key) as sdk,
    ):
        created = create(sdk, upload(sdk, jsonl(line("slow"))))
        # Past the window at once (still within the call's 60 s lease).
        harness.advance_clock(monkeypatch, 31)
        batch = wait(sdk, created.id)
        assert batch.status == "expired" and batch.output_file_id is None
        (expired,) = lines_of(sdk, batch.error_file_id)
    assert expired["custom_id"] == "slow" and expired["error"]["code"] == "batch_expired"


def test_deleted_file_is_gone(client: openai.OpenAI) -> None:
    file_id = upload(client, jsonl(line("a")))
    deleted = client.files.delete(file_id)
    assert (deleted.id, deleted.deleted, deleted.object) == (file_id, True, "file")
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(file_id)
    with pytest.raises(openai.NotFoundError):
        client.files.content(file_id)
    assert list(client.files.list()) == []


def test_uploaded_content_downloads_byte_for_byte(client: openai.OpenAI) -> None:
    content = jsonl(*(line(f"r{i}", "x" * 1000) for i in range(2000)))  # > 2 MiB: many chunks
    file_id = upload(client, content)
    assert client.files.retrieve(file_id).bytes == len(content)
    assert client.files.content(file_id).content == content


def test_files_list_filters_by_purpose_and_pages_oldest_first(client: openai.OpenAI) -> None:
    ids = [upload(client, jsonl(line(f"r{i}"))) for i in range(3)]
    page = client.files.list(limit=2, order="asc", purpose="batch")
    assert [f.id for f in page.data] == ids[:2] and page.has_more
    assert [f.id for f in client.files.list(limit=2, order="asc")] == ids
    assert list(client.files.list(purpose="batch_output")) == []


def _assert_envelope(exc: openai.APIStatusError, status: int, param: str | None) -> None:
    assert exc.status_code == status
    error = exc.response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param


def test_other_purposes_are_refused_and_nothing_is_stored(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        upload(client, jsonl(line("a")), purpose="fine-tune")
    _assert_envelope(caught.value, 400, "purpose")
    assert "'batch'" in caught.value.message or "batch" in caught.value.message
    assert list(client.files.list()) == []


def test_unserved_endpoint_is_a_400_naming_the_supported_ones(client: openai.OpenAI) -> None:
    file_id = upload(client, jsonl(line("a")))
    with pytest.raises(openai.BadRequestError) as caught:
        client.batches.create(
            input_file_id=file_id, endpoint="/v1/moderations", completion_window="24h"
        )
    _assert_envelope(caught.value, 400, "endpoint")
    assert ENDPOINT in caught.value.message
    assert list(client.batches.list()) == []


@pytest.mark.parametrize(
    ("metadata", "param"),
    [
        ({f"k{i}": "v" for i in range(17)}, "metadata"),
        ({"k" * 65: "v"}, "metadata"),
        ({"k": "v" * 513}, "metadata.k"),
    ],
)
def test_metadata_past_openai_limits_is_a_400(
    client: openai.OpenAI, metadata: dict[str, str], param: str
) -> None:
    file_id = upload(client, jsonl(line("a")))
    with pytest.raises(openai.BadRequestError) as caught:
        create(client, file_id, metadata=metadata)
    _assert_envelope(caught.value, 400, param)
    assert list(client.batches.list()) == []


def test_completion_window_other_than_24h_is_a_400(client: openai.OpenAI) -> None:
    file_id = upload(client, jsonl(line("a")))
    with pytest.raises(openai.BadRequestError) as caught:
        client.batches.create(
            input_file_id=file_id,
            endpoint=ENDPOINT,
            completion_window="48h",  # type: ignore[arg-type]
        )
    _assert_envelope(caught.value, 400, "completion_window")


def test_unknown_or_another_keys_input_file_is_a_404(
    client: openai.OpenAI, server: harness.RunningServer
) -> None:
    with pytest.raises(openai.NotFoundError):
        create(client, "file-doesnotexist")
    file_id = upload(client, jsonl(line("a")))
    with server.openai(server.new_key("other"), max_retries=0) as other:
        with pytest.raises(openai.NotFoundError) as caught:
            create(other, file_id)
        _assert_envelope(caught.value, 404, "input_file_id")
        with pytest.raises(openai.NotFoundError):
            other.files.retrieve(file_id)


@pytest.fixture
def small_server(tmp_path: Path, upstream: FakeUpstream) -> Iterator[harness.RunningServer]:
    yield from _serve(tmp_path, upstream, max_file_bytes=2000, max_requests_per_batch=3)


def test_file_past_the_size_limit_is_a_413_and_nothing_is_stored(
    small_server: harness.RunningServer,
) -> None:
    with small_server.openai(small_server.api_key, max_retries=0) as sdk:
        with pytest.raises(openai.APIStatusError) as caught:
            upload(sdk, jsonl(*(line(f"r{i}") for i in range(30))))
        _assert_envelope(caught.value, 413, "file")
        assert list(sdk.files.list()) == []


def _chunked_multipart(content: bytes) -> Iterator[bytes]:
    # A generator body: httpx sends it chunked, with no Content-Length at all.
    yield b'--b\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
    yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.jsonl"\r\n\r\n'
    for start in range(0, len(content), 500):
        yield content[start : start + 500]
    yield b"\r\n--b--\r\n"


@pytest.mark.parametrize(("size", "status"), [(1500, 200), (2500, 413)])
def test_size_limit_is_counted_on_the_stream_without_content_length(
    small_server: harness.RunningServer, size: int, status: int
) -> None:
    with small_server.client() as http:
        response = http.post(
            "/v1/files",
            content=_chunked_multipart(b"x" * size),
            headers={"content-type": "multipart/form-data; boundary=b"},
        )
        assert "content-length" not in response.request.headers
        assert response.status_code == status
        assert len(http.get("/v1/files").json()["data"]) == (1 if status == 200 else 0)
    # The spool is gone either way: nothing is left behind on disk.
    assert list((small_server.settings.data_dir / "tmp").iterdir()) == []


def test_file_with_more_requests_than_the_limit_is_a_400_and_stores_no_batch(
    small_server: harness.RunningServer,
) -> None:
    with small_server.openai(small_server.api_key, max_retries=0) as sdk:
        content = jsonl(*(json.dumps({"custom_id": str(i)}) for i in range(4)))
        with pytest.raises(openai.BadRequestError) as caught:
            create(sdk, upload(sdk, content))
        _assert_envelope(caught.value, 400, "input_file_id")
        assert caught.value.code == "batch_too_large"
        assert list(sdk.batches.list()) == []


def test_openai_batch_is_the_batch_object_even_for_accept_any(
    server: harness.RunningServer, client: openai.OpenAI
) -> None:
    # Native batches stream JSONL here once ended; OpenAI ones never do.
    batch = wait(client, create(client, upload(client, jsonl(line("a")))).id)
    with server.client() as http:  # httpx's default Accept, */*
        response = http.get(f"/v1/batches/{batch.id}")
    assert response.json()["output_file_id"] == batch.output_file_id
