"""The fake upstream's provider batch APIs (tests/fakes/upstream_batches.py):
OpenAI Files + Batches and Anthropic Message Batches, driven with plain httpx
and the official SDKs, and every lifecycle and fault knob doing what it says."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import httpx
import openai
import orjson
import pytest

from tests.fakes.upstream import FakeUpstream, RemoteUpstream, start_process

CHAT = "/v1/chat/completions"
# A request body per OpenAI batch endpoint, asking about ``text``.
BODIES: dict[str, Callable[[str], dict[str, Any]]] = {
    CHAT: lambda text: {"model": "m", "messages": [{"role": "user", "content": text}]},
    "/v1/responses": lambda text: {"model": "m", "input": text},
    "/v1/completions": lambda text: {"model": "m", "prompt": text},
    "/v1/embeddings": lambda text: {"model": "m", "input": text},
}


@pytest.fixture
def http(fake: FakeUpstream) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake.base_url, timeout=10) as client:
        yield client


@pytest.fixture
def oai(fake: FakeUpstream) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=0) as client:
        yield client


@pytest.fixture
def claude(fake: FakeUpstream) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=fake.base_url, api_key="k", max_retries=0) as client:
        yield client


def line(custom_id: str, url: str = CHAT, text: str | None = None) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": url,
        "body": BODIES[url](text or f"question {custom_id}"),
    }


def jsonl(items: list[Any]) -> bytes:
    return b"".join(orjson.dumps(item) + b"\n" for item in items)


def parse_jsonl(data: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(raw) for raw in data.splitlines() if raw.strip()]


def wait_for(check: Callable[[], Any], what: str, seconds: float = 10.0) -> Any:
    """Poll ``check`` until it returns something truthy (no timing asserted:
    the deadline only stops a hung test)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def upload(http: httpx.Client, items: list[Any], name: str = "batch.jsonl") -> str:
    response = http.post(
        "/v1/files", files={"file": (name, jsonl(items))}, data={"purpose": "batch"}
    )
    assert response.status_code == 200, response.text
    file_id: str = response.json()["id"]
    return file_id


def create(http: httpx.Client, file_id: str, endpoint: str = CHAT, **extra: Any) -> httpx.Response:
    body = {"input_file_id": file_id, "endpoint": endpoint, "completion_window": "24h", **extra}
    return http.post("/v1/batches", json=body)


def run_openai(
    http: httpx.Client, items: list[Any], endpoint: str = CHAT, **extra: Any
) -> dict[str, Any]:
    """Upload, create, and poll until the batch ends; the last batch object."""
    response = create(http, upload(http, items), endpoint, **extra)
    assert response.status_code == 200, response.text
    return ended_openai(http, response.json()["id"])


def ended_openai(http: httpx.Client, batch_id: str) -> dict[str, Any]:
    ended = ("completed", "failed", "expired", "cancelled")
    batch: dict[str, Any] = wait_for(
        lambda: (b := http.get(f"/v1/batches/{batch_id}").json())["status"] in ended and b,
        f"batch {batch_id} to end",
    )
    return batch


def content(http: httpx.Client, file_id: str | None) -> list[dict[str, Any]]:
    if file_id is None:
        return []
    response = http.get(f"/v1/files/{file_id}/content")
    assert response.status_code == 200, response.text
    return parse_jsonl(response.content)


def without_ids(value: Any) -> Any:
    """A reply with the per-call ids and clocks left out, to compare replies."""
    if isinstance(value, dict):
        skip = {"id", "created", "created_at", "call_id"}
        return {k: without_ids(v) for k, v in value.items() if k not in skip}
    if isinstance(value, list):
        return [without_ids(v) for v in value]
    return value


def by_custom_id(lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["custom_id"]: item for item in lines}


def message_request(custom_id: str, text: str | None = None) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "params": {
            "model": "m",
            "max_tokens": 32,
            "messages": [{"role": "user", "content": text or f"question {custom_id}"}],
        },
    }


def create_messages(
    http: httpx.Client, requests: list[Any], timeout: float | None = None
) -> httpx.Response:
    return http.post(
        "/v1/messages/batches",
        json={"requests": requests},
        headers={"anthropic-version": "2023-06-01"},
        timeout=timeout or http.timeout,
    )


def ended_messages(http: httpx.Client, batch_id: str) -> dict[str, Any]:
    batch: dict[str, Any] = wait_for(
        lambda: (
            (b := http.get(f"/v1/messages/batches/{batch_id}").json())["processing_status"]
            == "ended"
            and b
        ),
        f"message batch {batch_id} to end",
    )
    return batch


def results(http: httpx.Client, batch: dict[str, Any]) -> dict[str, dict[str, Any]]:
    response = http.get(batch["results_url"])
    assert response.status_code == 200, response.text
    return {item["custom_id"]: item["result"] for item in parse_jsonl(response.content)}


# --- OpenAI Files


def test_files_upload_list_retrieve_content_and_delete(
    oai: openai.OpenAI, http: httpx.Client
) -> None:
    data = jsonl([line("a"), line("b")])
    first = oai.files.create(file=("one.jsonl", data), purpose="batch")
    second = oai.files.create(file=("two.jsonl", b"x"), purpose="user_data")
    assert (first.filename, first.purpose, first.bytes, first.status) == (
        "one.jsonl",
        "batch",
        len(data),
        "processed",
    )
    assert oai.files.retrieve(first.id).filename == "one.jsonl"
    assert oai.files.content(first.id).content == data
    assert [f.id for f in oai.files.list()] == [second.id, first.id]  # newest first
    assert [f.id for f in oai.files.list(order="asc")] == [first.id, second.id]
    assert [f.id for f in oai.files.list(purpose="batch")] == [first.id]
    page = http.get("/v1/files", params={"limit": 1}).json()
    assert ([f["id"] for f in page["data"]], page["has_more"]) == ([second.id], True)
    rest = http.get("/v1/files", params={"limit": 1, "after": page["last_id"]}).json()
    assert ([f["id"] for f in rest["data"]], rest["has_more"]) == ([first.id], False)
    assert oai.files.delete(first.id).deleted
    with pytest.raises(openai.NotFoundError):
        oai.files.retrieve(first.id)
    assert [f.id for f in oai.files.list()] == [second.id]


def test_upload_without_a_purpose_or_a_file_is_refused(http: httpx.Client) -> None:
    no_purpose = http.post("/v1/files", files={"file": ("a.jsonl", b"{}")})
    assert no_purpose.status_code == 400
    assert no_purpose.json()["error"]["param"] == "purpose"
    no_file = http.post("/v1/files", files={"other": ("a", b"x")}, data={"purpose": "batch"})
    assert no_file.status_code == 400
    assert http.post("/v1/files", json={"purpose": "batch"}).status_code == 400


# --- OpenAI Batches


def test_openai_sdk_batch_round_trip_answers_like_real_time_calls(oai: openai.OpenAI) -> None:
    items = [line(f"c{i}", text=f"batch question {i}") for i in range(5)]
    uploaded = oai.files.create(file=("batch.jsonl", jsonl(items)), purpose="batch")
    batch = oai.batches.create(
        input_file_id=uploaded.id,
        endpoint=CHAT,
        completion_window="24h",
        metadata={"batchgate_job": "job-1"},
    )
    assert (batch.status, batch.metadata) == ("validating", {"batchgate_job": "job-1"})
    batch = wait_for(
        lambda: (b := oai.batches.retrieve(batch.id)).status == "completed" and b, "completion"
    )
    assert batch.request_counts is not None
    assert (batch.request_counts.total, batch.request_counts.completed) == (5, 5)
    assert batch.error_file_id is None and batch.output_file_id is not None
    assert batch.in_progress_at is not None and batch.completed_at is not None
    output = by_custom_id(parse_jsonl(oai.files.content(batch.output_file_id).content))
    assert sorted(output) == [f"c{i}" for i in range(5)]
    for item in items:
        got = output[item["custom_id"]]
        assert got["response"]["status_code"] == 200 and got["error"] is None
        assert got["id"] and got["response"]["request_id"]
        raw = oai.chat.completions.with_raw_response.create(**item["body"])
        real_time = raw.http_response.json()
        assert without_ids(got["response"]["body"]) == without_ids(real_time)


@pytest.mark.parametrize("endpoint", ["/v1/responses", "/v1/completions", "/v1/embeddings"])
def test_every_endpoint_batches_with_its_real_time_reply(http: httpx.Client, endpoint: str) -> None:
    items = [line(f"e{i}", endpoint) for i in range(3)]
    batch = run_openai(http, items, endpoint)
    assert batch["status"] == "completed", batch
    output = by_custom_id(content(http, batch["output_file_id"]))
    for item in items:
        real_time = http.post(endpoint, json=item["body"]).json()
        got = output[item["custom_id"]]["response"]["body"]
        assert without_ids(got) == without_ids(real_time)


def test_batch_list_is_newest_first_and_paginates(oai: openai.OpenAI, http: httpx.Client) -> None:
    file_id = upload(http, [line("a")])
    ids = [create(http, file_id).json()["id"] for _ in range(3)]
    assert [b.id for b in oai.batches.list()] == ids[::-1]
    first = http.get("/v1/batches", params={"limit": 2}).json()
    assert ([b["id"] for b in first["data"]], first["has_more"]) == (ids[:0:-1], True)
    rest = http.get("/v1/batches", params={"limit": 2, "after": first["last_id"]}).json()
    assert ([b["id"] for b in rest["data"]], rest["has_more"]) == ([ids[0]], False)
    assert http.get("/v1/batches", params={"limit": 0}).status_code == 400


def test_create_checks_its_fields(http: httpx.Client) -> None:
    file_id = upload(http, [line("a")])
    assert create(http, "file-nope").status_code == 400
    assert create(http, file_id, endpoint="/v1/messages").json()["error"]["param"] == "endpoint"
    window = http.post(
        "/v1/batches",
        json={"input_file_id": file_id, "endpoint": CHAT, "completion_window": "1h"},
    )
    assert window.status_code == 400
    assert create(http, file_id, metadata={"k": 1}).status_code == 400
    assert http.get("/v1/batches/batch_nope").status_code == 404


def test_malformed_input_lines_fail_the_batch_with_line_errors(http: httpx.Client) -> None:
    bad_url = {**line("b"), "url": "/v1/embeddings"}
    raw = jsonl([line("a")]) + b"not json\n" + jsonl([bad_url, line("a")])
    file_id = http.post(
        "/v1/files", files={"file": ("x.jsonl", raw)}, data={"purpose": "batch"}
    ).json()["id"]
    batch = ended_openai(http, create(http, file_id).json()["id"])
    assert batch["status"] == "failed" and batch["failed_at"] is not None
    errors = [(e["code"], e["line"]) for e in batch["errors"]["data"]]
    assert errors == [
        ("invalid_json_line", 2),
        ("mismatched_endpoint", 3),
        ("duplicate_custom_id", 4),
    ]
    assert (batch["output_file_id"], batch["request_counts"]["total"]) == (None, 0)


def test_a_line_the_endpoint_refuses_goes_to_the_error_file(http: httpx.Client) -> None:
    invalid = {**line("bad"), "body": {"model": "m", "messages": []}}
    batch = run_openai(http, [line("good"), invalid])
    assert batch["status"] == "completed"
    assert batch["request_counts"] == {"total": 2, "completed": 1, "failed": 1}
    assert list(by_custom_id(content(http, batch["output_file_id"]))) == ["good"]
    [error] = content(http, batch["error_file_id"])
    assert (error["custom_id"], error["response"]["status_code"]) == ("bad", 400)
    assert "messages" in error["response"]["body"]["error"]["message"]
    assert http.get("/_batches").json()["billed"] == {"good": 1}


def test_a_fault_scripted_for_a_lines_fingerprint_becomes_its_error(
    fake: FakeUpstream, http: httpx.Client
) -> None:
    fake.script_for("question flaky", "503", "429:1")
    first = run_openai(http, [line("flaky"), line("fine")])
    [error] = content(http, first["error_file_id"])
    assert (error["custom_id"], error["response"]["status_code"]) == ("flaky", 503)
    second = run_openai(http, [line("flaky")])
    [error] = content(http, second["error_file_id"])
    assert error["response"]["status_code"] == 429
    third = run_openai(http, [line("flaky")])
    assert [o["custom_id"] for o in content(http, third["output_file_id"])] == ["flaky"]


# --- Anthropic Message Batches


def test_anthropic_sdk_batch_round_trip_answers_like_real_time_calls(
    fake: FakeUpstream, claude: anthropic.Anthropic
) -> None:
    requests = [message_request(f"m{i}", f"batch message {i}") for i in range(4)]
    batch = claude.messages.batches.create(requests=requests)  # type: ignore[arg-type]
    assert batch.processing_status == "in_progress" and batch.results_url is None
    assert batch.request_counts.processing == 4
    batch = wait_for(
        lambda: (
            (b := claude.messages.batches.retrieve(batch.id)).processing_status == "ended" and b
        ),
        "the message batch to end",
    )
    assert batch.request_counts.succeeded == 4 and batch.request_counts.processing == 0
    assert batch.ended_at is not None
    assert batch.results_url == f"{fake.base_url}/v1/messages/batches/{batch.id}/results"
    got = {r.custom_id: r.result for r in claude.messages.batches.results(batch.id)}
    assert sorted(got) == [f"m{i}" for i in range(4)]
    for request in requests:
        result = got[request["custom_id"]]
        assert result.type == "succeeded"
        real_time = claude.messages.with_raw_response.create(**request["params"])
        assert without_ids(result.message.model_dump()) == without_ids(
            real_time.parse().model_dump()
        )


def test_message_batch_list_pages_both_ways(
    claude: anthropic.Anthropic, http: httpx.Client
) -> None:
    ids = [create_messages(http, [message_request("a")]).json()["id"] for _ in range(3)]
    assert [b.id for b in claude.messages.batches.list()] == ids[::-1]
    newest = http.get("/v1/messages/batches", params={"limit": 1}).json()
    assert ([b["id"] for b in newest["data"]], newest["has_more"]) == ([ids[2]], True)
    older = http.get("/v1/messages/batches", params={"after_id": ids[2]}).json()
    assert [b["id"] for b in older["data"]] == [ids[1], ids[0]]
    newer = http.get("/v1/messages/batches", params={"before_id": ids[0], "limit": 1}).json()
    assert ([b["id"] for b in newer["data"]], newer["has_more"]) == ([ids[1]], True)


def test_message_batch_create_checks_its_requests(http: httpx.Client) -> None:
    twice = create_messages(http, [message_request("a"), message_request("a")])
    assert twice.status_code == 400
    assert twice.json()["error"]["type"] == "invalid_request_error"
    assert create_messages(http, [message_request("bad id!")]).status_code == 400
    assert create_messages(http, []).status_code == 400
    unversioned = http.post("/v1/messages/batches", json={"requests": [message_request("a")]})
    assert unversioned.status_code == 400
    missing = http.get("/v1/messages/batches/msgbatch_nope")
    assert (missing.status_code, missing.json()["error"]["type"]) == (404, "not_found_error")


def test_an_invalid_message_request_is_errored_and_the_rest_succeed(http: httpx.Client) -> None:
    bad = {"custom_id": "bad", "params": {"model": "m", "messages": []}}
    batch = ended_messages(http, create_messages(http, [message_request("ok"), bad]).json()["id"])
    assert batch["request_counts"] == {
        "processing": 0,
        "succeeded": 1,
        "errored": 1,
        "canceled": 0,
        "expired": 0,
    }
    got = results(http, batch)
    assert got["ok"]["type"] == "succeeded"
    assert got["bad"]["type"] == "errored"
    assert got["bad"]["error"]["error"]["type"] == "invalid_request_error"


def test_message_batch_delete_only_once_ended(
    fake: FakeUpstream, claude: anthropic.Anthropic
) -> None:
    fake.configure(hold=True)
    batch = claude.messages.batches.create(requests=[message_request("a")])  # type: ignore[list-item]
    with pytest.raises(anthropic.BadRequestError):
        claude.messages.batches.delete(batch.id)
    assert claude.messages.batches.cancel(batch.id).processing_status == "canceling"
    ended = wait_for(
        lambda: (
            (b := claude.messages.batches.retrieve(batch.id)).processing_status == "ended" and b
        ),
        "the cancel to end the batch",
    )
    assert ended.request_counts.canceled == 1 and ended.cancel_initiated_at is not None
    assert claude.messages.batches.delete(batch.id).type == "message_batch_deleted"
    with pytest.raises(anthropic.NotFoundError):
        claude.messages.batches.retrieve(batch.id)


# --- lifecycle


def entry(fake: FakeUpstream | RemoteUpstream, batch_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(b for b in fake.batches()["batches"] if b["id"] == batch_id)
    return found


def test_hold_keeps_a_batch_in_progress_until_released(
    fake: FakeUpstream, http: httpx.Client
) -> None:
    fake.configure(hold=True)
    held = create(http, upload(http, [line("h1"), line("h2")])).json()["id"]
    fake.configure(hold=False)
    # Every tick visits open batches oldest first: once the later batch has
    # completed, the held one has been passed over at least once.
    assert run_openai(http, [line("f1")])["status"] == "completed"
    assert http.get(f"/v1/batches/{held}").json()["status"] == "in_progress"
    assert (entry(fake, held)["held"], entry(fake, held)["done"]) == (True, 0)
    fake.batch_control(held, hold=False)
    batch = ended_openai(http, held)
    assert (batch["status"], batch["request_counts"]["completed"]) == ("completed", 2)


def test_process_after_seconds_delays_the_answers(fake: FakeUpstream, http: httpx.Client) -> None:
    fake.configure(process_after_seconds=3600)
    late = create(http, upload(http, [line("l1"), line("l2")])).json()["id"]
    fake.configure(process_after_seconds=0)
    assert run_openai(http, [line("f1")])["status"] == "completed"
    assert entry(fake, late)["state"] == "in_progress" and entry(fake, late)["done"] == 0
    [ended] = fake.batch_control(late, end="completed")
    assert (ended["state"], ended["done"]) == ("completed", 2)
    assert http.get(f"/v1/batches/{late}").json()["request_counts"]["completed"] == 2


@pytest.mark.slow  # lines are answered over ~2 s
def test_line_rate_answers_lines_progressively(fake: FakeUpstream, http: httpx.Client) -> None:
    fake.configure(line_rate=20)
    batch_id = create(http, upload(http, [line(f"r{i}") for i in range(40)])).json()["id"]
    wait_for(lambda: 0 < entry(fake, batch_id)["done"] < 40, "some lines answered, not all")
    assert ended_openai(http, batch_id)["request_counts"]["completed"] == 40


@pytest.mark.parametrize("end", ["failed", "expired"])
def test_an_openai_batch_ends_failed_or_expired_with_partial_output(
    fake: FakeUpstream, http: httpx.Client, end: str
) -> None:
    fake.configure(hold=True)
    batch_id = create(http, upload(http, [line(f"p{i}") for i in range(5)])).json()["id"]
    fake.batch_control(batch_id, end=end, done=2)
    batch = http.get(f"/v1/batches/{batch_id}").json()
    assert batch["status"] == end and batch[f"{end}_at"] is not None
    assert [o["custom_id"] for o in content(http, batch["output_file_id"])] == ["p0", "p1"]
    errors = [(e["custom_id"], e["error"]["code"]) for e in content(http, batch["error_file_id"])]
    if end == "expired":
        assert errors == [(f"p{i}", "batch_expired") for i in (2, 3, 4)]
    else:  # a failed batch just stops: its other lines are nowhere
        assert errors == [] and batch["errors"]["data"][0]["code"] == "server_error"
    assert fake.batches()["billed"] == {"p0": 1, "p1": 1}


@pytest.mark.parametrize(("end", "rest"), [("failed", "errored"), ("expired", "expired")])
def test_a_message_batch_ends_failed_or_expired_with_partial_results(
    fake: FakeUpstream, http: httpx.Client, end: str, rest: str
) -> None:
    fake.configure(hold=True)
    batch_id = create_messages(http, [message_request(f"p{i}") for i in range(4)]).json()["id"]
    fake.batch_control(batch_id, end=end, done=1)
    batch = http.get(f"/v1/messages/batches/{batch_id}").json()
    assert batch["processing_status"] == "ended"
    assert batch["request_counts"]["succeeded"] == 1 and batch["request_counts"][rest] == 3
    got = results(http, batch)
    assert [got[f"p{i}"]["type"] for i in range(4)] == ["succeeded", rest, rest, rest]
    if rest == "errored":
        assert got["p1"]["error"]["error"]["type"] == "api_error"
    assert fake.batches()["billed"] == {"p0": 1}


def test_cancelling_an_openai_batch_keeps_its_answered_lines(
    fake: FakeUpstream, oai: openai.OpenAI, http: httpx.Client
) -> None:
    fake.configure(hold=True)
    batch_id = create(http, upload(http, [line(f"k{i}") for i in range(5)])).json()["id"]
    fake.batch_control(batch_id, progress=2)
    assert oai.batches.cancel(batch_id).status == "cancelling"
    batch = ended_openai(http, batch_id)
    assert batch["status"] == "cancelled"
    assert batch["cancelling_at"] is not None and batch["cancelled_at"] is not None
    assert [o["custom_id"] for o in content(http, batch["output_file_id"])] == ["k0", "k1"]
    errors = [(e["custom_id"], e["error"]["code"]) for e in content(http, batch["error_file_id"])]
    assert errors == [(f"k{i}", "batch_cancelled") for i in (2, 3, 4)]
    fake.configure(hold=False)
    with pytest.raises(openai.BadRequestError):
        oai.batches.cancel(run_openai(http, [line("done")])["id"])


def test_cancelling_a_message_batch_cancels_its_unanswered_requests(
    fake: FakeUpstream, claude: anthropic.Anthropic
) -> None:
    fake.configure(hold=True)
    requests = [message_request(f"k{i}") for i in range(3)]
    batch = claude.messages.batches.create(requests=requests)  # type: ignore[arg-type]
    fake.batch_control(batch.id, progress=1)
    claude.messages.batches.cancel(batch.id)
    ended = wait_for(
        lambda: (
            (b := claude.messages.batches.retrieve(batch.id)).processing_status == "ended" and b
        ),
        "the cancel to end the batch",
    )
    assert (ended.request_counts.succeeded, ended.request_counts.canceled) == (1, 2)
    got = {r.custom_id: r.result.type for r in claude.messages.batches.results(batch.id)}
    assert got == {"k0": "succeeded", "k1": "canceled", "k2": "canceled"}


def test_control_over_http_reaches_every_open_batch(fake: FakeUpstream, http: httpx.Client) -> None:
    fake.configure(hold=True)
    first = create(http, upload(http, [line("a")])).json()["id"]
    second = create_messages(http, [message_request("b")]).json()["id"]
    released = http.post("/_batches/*", json={"hold": False})
    assert {b["id"] for b in released.json()["batches"]} == {first, second}
    assert ended_openai(http, first)["status"] == "completed"
    assert ended_messages(http, second)["request_counts"]["succeeded"] == 1
    assert http.post(f"/_batches/{first}", json={"hold": True}).status_code == 400  # ended
    assert http.post("/_batches/batch_nope", json={"hold": True}).status_code == 404
    assert http.post("/_batches/*", json={"pause": True}).status_code == 400
    assert http.post("/_batches/*", json={"end": "done"}).status_code == 400


# --- faults


def test_route_faults_are_used_up_in_order(fake: FakeUpstream, http: httpx.Client) -> None:
    file_id = upload(http, [line("a")])
    fake.script_route("batches.create", "500", "429:2", "drop")
    first, second = create(http, file_id), create(http, file_id)
    assert (first.status_code, second.status_code) == (500, 429)
    assert second.headers["retry-after"] == "2"
    with pytest.raises(httpx.RemoteProtocolError):
        create(http, file_id)
    assert create(http, file_id).status_code == 200
    assert len(fake.batches()["batches"]) == 1  # the faults created nothing
    # The call log files batch API calls under their route kind.
    calls = fake.calls("batches.create")
    assert [(c["outcome"], c["status"]) for c in calls] == [
        ("500", 500),
        ("429", 429),
        ("drop", None),
        ("ok", 200),
    ]
    assert [c["attempt"] for c in calls] == [1, 2, 3, 4]


def test_route_faults_reach_each_route_kind(
    fake: FakeUpstream, oai: openai.OpenAI, claude: anthropic.Anthropic, http: httpx.Client
) -> None:
    fake.configure(route_faults={"files.upload": ["503"], "messages_batches.create": [529]})
    with pytest.raises(openai.InternalServerError):
        oai.files.create(file=("a.jsonl", jsonl([line("a")])), purpose="batch")
    with pytest.raises(anthropic.InternalServerError):
        claude.messages.batches.create(requests=[message_request("a")])  # type: ignore[list-item]
    batch = run_openai(http, [line("a")])
    message_batch = ended_messages(http, create_messages(http, [message_request("a")]).json()["id"])
    fake.script_route("batches.get", "502")
    fake.script_route("files.content", "500")
    fake.script_route("messages_batches.results", "503")
    fake.script_route("messages_batches.get", "429:1")
    with pytest.raises(openai.InternalServerError):
        oai.batches.retrieve(batch["id"])
    with pytest.raises(openai.InternalServerError):
        oai.files.content(batch["output_file_id"])
    with pytest.raises(anthropic.RateLimitError):
        claude.messages.batches.retrieve(message_batch["id"])
    assert http.get(message_batch["results_url"]).status_code == 503
    assert oai.batches.retrieve(batch["id"]).status == "completed"  # each fault used once
    assert len(results(http, message_batch)) == 1
    with pytest.raises(ValueError, match="unknown route kind"):
        fake.configure(route_faults={"batches.poll": ["500"]})


def test_a_hang_on_poll_times_the_client_out_once(fake: FakeUpstream, http: httpx.Client) -> None:
    batch = run_openai(http, [line("a")])
    fake.script_route("batches.get", {"kind": "hang", "hang_seconds": 30})
    with pytest.raises(httpx.ReadTimeout):
        http.get(f"/v1/batches/{batch['id']}", timeout=0.5)
    assert http.get(f"/v1/batches/{batch['id']}").json()["status"] == "completed"


def test_a_fault_after_the_work_answers_an_error_for_something_done(
    fake: FakeUpstream, http: httpx.Client
) -> None:
    fake.script_route("batches.create", {"status": 500, "after": True})
    fake.script_route("messages_batches.create", {"kind": "drop", "after": True})
    assert create(http, upload(http, [line("a")])).status_code == 500
    with pytest.raises(httpx.RemoteProtocolError):
        create_messages(http, [message_request("b")])
    made = fake.batches()["batches"]
    assert [(b["api"], b["custom_ids"]) for b in made] == [("openai", ["a"]), ("anthropic", ["b"])]
    assert len(http.get("/v1/batches").json()["data"]) == 1


def test_token_limit_fails_an_openai_batch_after_accepting_it(
    fake: FakeUpstream, http: httpx.Client
) -> None:
    fake.configure(max_batch_requests=2)
    response = create(http, upload(http, [line(f"t{i}") for i in range(3)]))
    assert response.status_code == 200
    batch = ended_openai(http, response.json()["id"])
    assert batch["status"] == "failed"
    assert batch["errors"]["data"][0]["code"] == "token_limit_exceeded"
    assert batch["output_file_id"] is None and fake.batches()["billed"] == {}
    assert run_openai(http, [line("t0"), line("t1")])["status"] == "completed"
    fake.configure(max_batch_requests=None, max_batch_bytes=100)
    too_big = ended_openai(http, create(http, upload(http, [line("t0")])).json()["id"])
    assert too_big["errors"]["data"][0]["code"] == "token_limit_exceeded"


def test_token_limit_can_refuse_the_create_instead(
    fake: FakeUpstream, oai: openai.OpenAI, http: httpx.Client
) -> None:
    fake.configure(max_batch_requests=2, token_limit_mode="create")
    file_id = upload(http, [line(f"t{i}") for i in range(3)])
    with pytest.raises(openai.BadRequestError) as refused:
        oai.batches.create(input_file_id=file_id, endpoint=CHAT, completion_window="24h")
    assert refused.value.code == "token_limit_exceeded"
    assert fake.batches()["batches"] == []
    with pytest.raises(ValueError, match="token_limit_mode"):
        fake.configure(token_limit_mode="sometimes")


def test_a_message_batch_over_the_limit_is_refused_with_413(
    fake: FakeUpstream, claude: anthropic.Anthropic
) -> None:
    fake.configure(max_batch_requests=2)
    requests = [message_request(f"t{i}") for i in range(3)]
    with pytest.raises(anthropic.RequestTooLargeError) as refused:
        claude.messages.batches.create(requests=requests)  # type: ignore[arg-type]
    assert refused.value.status_code == 413
    assert refused.value.body["error"]["type"] == "request_too_large"  # type: ignore[index]
    assert fake.batches()["batches"] == []
    assert claude.messages.batches.create(requests=requests[:2]).request_counts.processing == 2  # type: ignore[arg-type]


def test_shuffled_output_has_every_line_out_of_order(
    fake: FakeUpstream, http: httpx.Client
) -> None:
    fake.configure(shuffle_output=True)
    ids = [f"s{i:02d}" for i in range(30)]
    batch = run_openai(http, [line(custom_id) for custom_id in ids])
    got = [o["custom_id"] for o in content(http, batch["output_file_id"])]
    assert got != ids and sorted(got) == ids
    message_batch = ended_messages(
        http, create_messages(http, [message_request(i) for i in ids]).json()["id"]
    )
    got = [
        item["custom_id"] for item in parse_jsonl(http.get(message_batch["results_url"]).content)
    ]
    assert got != ids and sorted(got) == ids


def test_dropped_output_lines_are_missing_reported_and_not_billed(
    fake: FakeUpstream, http: httpx.Client
) -> None:
    fake.configure(drop_output_lines=2)
    ids = [f"d{i}" for i in range(6)]
    batch = run_openai(http, [line(custom_id) for custom_id in ids])
    delivered = {o["custom_id"] for o in content(http, batch["output_file_id"])}
    report = fake.batches()
    dropped = set(report["batches"][0]["dropped"])
    assert len(dropped) == 2 and delivered == set(ids) - dropped
    assert set(report["billed"]) == delivered
    assert batch["request_counts"]["completed"] == 6  # the upstream says it did them all
    assert fake.configure()["drop_output_lines"] == 0  # the budget is used up
    again = ended_messages(
        http, create_messages(http, [message_request(i) for i in ids]).json()["id"]
    )
    assert len(results(http, again)) == 6


def test_a_slow_download_streams_in_chunks_and_survives_a_client_leaving(
    fake: FakeUpstream, http: httpx.Client, claude: anthropic.Anthropic
) -> None:
    batch = run_openai(http, [line(f"c{i}") for i in range(10)])
    whole = http.get(f"/v1/files/{batch['output_file_id']}/content").content
    fake.configure(content_chunk_delay_ms=60_000, content_chunk_bytes=100)
    with http.stream("GET", f"/v1/files/{batch['output_file_id']}/content") as response:
        assert response.headers["content-length"] == str(len(whole))
        first = next(response.iter_raw())
    assert first == whole[: len(first)] and len(first) <= 100  # then the client left
    fake.configure(content_chunk_delay_ms=5)
    assert http.get(f"/v1/files/{batch['output_file_id']}/content").content == whole
    message_batch = claude.messages.batches.create(
        requests=[message_request(f"m{i}") for i in range(5)]
    )  # type: ignore[misc]
    wait_for(
        lambda: claude.messages.batches.retrieve(message_batch.id).processing_status == "ended",
        "end",
    )
    assert len(list(claude.messages.batches.results(message_batch.id))) == 5


def creates_go_unanswered(http: httpx.Client, file_id: str) -> None:
    """An OpenAI create of ``file_id`` and an Anthropic one both get no
    answer within half a second."""
    with pytest.raises(httpx.ReadTimeout):
        http.post(
            "/v1/batches",
            json={"input_file_id": file_id, "endpoint": CHAT, "completion_window": "24h"},
            timeout=0.5,
        )
    with pytest.raises(httpx.ReadTimeout):
        create_messages(http, [message_request("b")], timeout=0.5)


def test_create_delay_after_makes_the_batch_before_answering(
    fake: FakeUpstream, http: httpx.Client
) -> None:
    file_id = upload(http, [line("a")])
    fake.configure(create_delay_after_ms=60_000)
    creates_go_unanswered(http, file_id)
    assert [b["api"] for b in fake.batches()["batches"]] == ["openai", "anthropic"]
    assert len(http.get("/v1/batches").json()["data"]) == 1
    assert len(http.get("/v1/messages/batches").json()["data"]) == 1


def test_create_hang_before_creates_nothing(fake: FakeUpstream, http: httpx.Client) -> None:
    fake.configure(create_hang_before=True)
    file_id = upload(http, [line("a")])  # uploads are not creates
    creates_go_unanswered(http, file_id)
    assert fake.batches()["batches"] == []


# --- counters, reset, auth, process mode


def test_batches_report_counts_billed_lines_across_batches_and_apis(
    fake: FakeUpstream, http: httpx.Client
) -> None:
    run_openai(http, [line("x"), line("y")])
    ended_messages(http, create_messages(http, [message_request("x")]).json()["id"])
    report = http.get("/_batches").json()
    assert [(b["api"], b["custom_ids"], b["state"]) for b in report["batches"]] == [
        ("openai", ["x", "y"], "completed"),
        ("anthropic", ["x"], "completed"),
    ]
    assert report["billed"] == {"x": 2, "y": 1}
    assert all(b["ended_at"] >= b["created_at"] for b in report["batches"])
    assert {f["purpose"] for f in report["files"]} == {"batch", "batch_output"}


def test_reset_clears_batches_files_counters_and_batch_settings(
    fake: FakeUpstream, http: httpx.Client
) -> None:
    run_openai(http, [line("x")])
    fake.configure(hold=True, route_faults={"batches.get": ["500"]})
    http.post("/_reset").raise_for_status()
    assert fake.batches() == {"batches": [], "files": [], "billed": {}}
    assert http.get("/v1/files").json()["data"] == []
    settings = http.get("/_control").json()
    assert (settings["hold"], settings["route_faults"]) == (False, {})


def test_the_api_key_guards_the_batch_routes() -> None:
    with FakeUpstream(api_key="secret") as guarded:
        assert httpx.get(guarded.openai_base_url + "/files").status_code == 401
        refused = httpx.get(guarded.base_url + "/v1/messages/batches")
        assert refused.json()["error"]["type"] == "authentication_error"
        with openai.OpenAI(base_url=guarded.openai_base_url, api_key="secret") as client:
            assert client.files.list().data == []
        with anthropic.Anthropic(base_url=guarded.base_url, api_key="secret") as claude:
            assert claude.messages.batches.list().data == []


def test_process_mode_serves_the_batch_routes_and_their_control() -> None:
    with start_process() as remote, httpx.Client(base_url=remote.base_url, timeout=10) as http:
        remote.configure(hold=True)
        batch_id = create(http, upload(http, [line("a"), line("b")])).json()["id"]
        assert entry(remote, batch_id)["held"]
        remote.script_route("batches.get", "503")
        assert http.get(f"/v1/batches/{batch_id}").status_code == 503
        [progressed] = remote.batch_control(batch_id, progress=1)
        assert progressed["done"] == 1
        remote.batch_control(batch_id, hold=False)
        assert ended_openai(http, batch_id)["status"] == "completed"
        assert remote.batches()["billed"] == {"a": 1, "b": 1}
        remote.reset()
        assert remote.batches()["batches"] == []
