"""The OpenAI dialect's pure parsing and rendering, and input line splitting."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from batchgate.canonical import chat
from batchgate.dialects import openai
from batchgate.domain import errors, failures, result_files
from batchgate.domain import files as file_model
from batchgate.domain.batch import Batch, ResultRow
from batchgate.domain.counts import StateTally
from batchgate.domain.states import BatchStatus, Dialect, RequestState
from batchgate.services.file_batches import iter_lines

ENDPOINT = "/v1/chat/completions"


def create_body(**fields: Any) -> bytes:
    body = {"input_file_id": "file-1", "endpoint": ENDPOINT, "completion_window": "24h"}
    return orjson.dumps({**body, **fields})


def test_create_body_accepts_the_sdk_fields() -> None:
    parsed = openai.parse_create(
        create_body(
            metadata={"k": "v"}, output_expires_after={"anchor": "created_at", "seconds": 7200}
        )
    )
    assert (parsed.input_file_id, parsed.metadata) == ("file-1", {"k": "v"})
    assert openai.output_ttl(parsed) == 7200


@pytest.mark.parametrize(
    ("fields", "param", "needle"),
    [
        ({"endpoint": "/v1/moderations"}, "endpoint", ENDPOINT),
        ({"completion_window": "1h"}, "completion_window", "24h"),
        ({"metadata": {str(i): "v" for i in range(17)}}, "metadata", "16"),
        ({"metadata": {"k" * 65: "v"}}, "metadata", "64"),
        ({"metadata": {"k": "v" * 513}}, "metadata.k", "512"),
        ({"metadata": {"k": 1}}, "metadata.k", "string"),
        ({"input_file_id": None}, "input_file_id", "string"),
        ({"extra": 1}, "extra", "Extra"),
        ({"output_expires_after": {"anchor": "created_at"}}, "output_expires_after.seconds", "int"),
        (
            {"output_expires_after": {"anchor": "created_at", "seconds": 3599}},
            "output_expires_after.seconds",
            "3600",
        ),
        (
            {"output_expires_after": {"anchor": "created_at", "seconds": 2592001}},
            "output_expires_after.seconds",
            "2592000",
        ),
        (
            {"output_expires_after": {"anchor": "completed_at", "seconds": 3600}},
            "output_expires_after.anchor",
            "created_at",
        ),
    ],
)
def test_bad_create_body_names_the_field(fields: dict[str, Any], param: str, needle: str) -> None:
    with pytest.raises(errors.InvalidRequest) as caught:
        openai.parse_create(create_body(**fields))
    assert caught.value.param == param
    assert needle in caught.value.message


def test_metadata_at_the_limits_is_accepted() -> None:
    metadata = {f"{i:02d}" + "k" * 62: "v" * 512 for i in range(16)}
    assert openai.parse_create(create_body(metadata=metadata)).metadata == metadata


def test_file_expires_after_comes_from_the_sdks_flattened_fields() -> None:
    fields = {"expires_after[anchor]": "created_at", "expires_after[seconds]": "3600"}
    assert openai.parse_file_expires_after(fields) == 3600
    assert openai.parse_file_expires_after({"purpose": "batch"}) is None


def test_a_bad_file_expires_after_names_the_field() -> None:
    fields = {"expires_after[anchor]": "created_at", "expires_after[seconds]": "soon"}
    with pytest.raises(errors.InvalidRequest) as caught:
        openai.parse_file_expires_after(fields)
    assert caught.value.param == "expires_after.seconds"


def test_only_batch_purpose_is_accepted_for_upload() -> None:
    assert openai.check_purpose("batch") == "batch"
    with pytest.raises(errors.InvalidRequest) as caught:
        openai.check_purpose("assistants")
    assert caught.value.param == "purpose" and "'assistants'" in caught.value.message


def input_line(**fields: Any) -> bytes:
    item = {
        "custom_id": "c1",
        "method": "POST",
        "url": ENDPOINT,
        "body": {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
    }
    item.update(fields)
    return orjson.dumps({k: v for k, v in item.items() if v is not ...})


def test_good_line_becomes_a_canonical_request() -> None:
    parsed = openai.parse_line(input_line(), 1, ENDPOINT)
    assert isinstance(parsed, openai.ParsedLine)
    assert parsed.custom_id == "c1"
    assert parsed.request.messages[0].content == "hi"


@pytest.mark.parametrize(
    ("raw", "code", "param"),
    [
        (b"{oops", "invalid_json_line", None),
        (b"[1, 2]", "invalid_json_line", None),
        (input_line(custom_id=...), "missing_required_parameter", "custom_id"),
        (input_line(body=None), "missing_required_parameter", "body"),
        (input_line(extra=1), "unknown_parameter", "extra"),
        (input_line(custom_id=""), "invalid_value", "custom_id"),
        (input_line(custom_id="x" * 257), "invalid_value", "custom_id"),
        (input_line(custom_id=7), "invalid_value", "custom_id"),
        (input_line(method="GET"), "invalid_value", "method"),
        (input_line(url="/v1/responses"), "url_mismatch", "url"),
        (input_line(body={"model": "m", "messages": []}), "invalid_value", "body.messages"),
        (
            input_line(body={"model": "m", "messages": [{"role": "user", "content": 5}]}),
            "invalid_type",
            "body.messages[0].content",
        ),
    ],
)
def test_bad_line_is_an_error_with_its_line_number(raw: bytes, code: str, param: str) -> None:
    error = openai.parse_line(raw, 7, ENDPOINT)
    assert isinstance(error, failures.InputError)
    assert error.to_json() == {
        "code": code,
        "message": error.message,
        "line": 7,
        "param": param,
    }


def test_line_error_messages_are_capped() -> None:
    error = failures.InputError(1, "invalid_body", "x" * 10_000)
    assert len(error.to_json()["message"]) == 500


def test_duplicate_error_names_the_first_line() -> None:
    error = openai.duplicate_error(9, "abc", 3)
    assert (error.line, error.code, error.param) == (9, "duplicate_custom_id", "custom_id")
    assert "line 3" in error.message and "'abc'" in error.message


# -- rendering -----------------------------------------------------------------


def make_batch(
    status: BatchStatus = BatchStatus.COMPLETED,
    dialect: Dialect = Dialect.OPENAI,
    **by_state: int,
) -> Batch:
    return Batch(
        id="batch_abc",
        owner="key_1",
        dialect=dialect,
        endpoint=ENDPOINT,
        input_file_id="file-1",
        completion_window="24h",
        metadata=None,
        status=status,
        errors=None,
        total=sum(by_state.values()),
        created_at=100.0,
        expires_at=200.0,
        tally=StateTally(by_state={RequestState(k): v for k, v in by_state.items()}),
    )


@pytest.mark.parametrize(
    ("batch", "output", "error"),
    [
        (make_batch(succeeded=2), "file-output-abc", None),
        (make_batch(succeeded=1, errored=1), "file-output-abc", "file-errors-abc"),
        (make_batch(BatchStatus.CANCELLED, canceled=2), None, "file-errors-abc"),
        (make_batch(BatchStatus.IN_PROGRESS, succeeded=1, queued=1), None, None),
        (make_batch(dialect=Dialect.NATIVE, succeeded=1), None, None),
    ],
)
def test_batch_object_names_result_files_once_ended(
    batch: Batch, output: str | None, error: str | None
) -> None:
    obj = openai.batch_object(batch)
    assert (obj["output_file_id"], obj["error_file_id"]) == (output, error)


def row(state: RequestState, index: int = 0, **fields: Any) -> ResultRow:
    return ResultRow(
        index=index,
        custom_id=f"c{index}",
        state=state,
        result=fields.get("result"),
        error=fields.get("error"),
        finished_at=150.0,
    )


REPLY = chat.ChatResponse(
    id="msg_1",
    model="m",
    content=[chat.TextBlock(text="hello")],
    stop_reason="max_tokens",
    usage=chat.Usage(input_tokens=3, output_tokens=4),
).model_dump()


def test_succeeded_line_carries_a_chat_completion_with_usage() -> None:
    line = openai.result_line(make_batch(), row(RequestState.SUCCEEDED, result=REPLY))
    assert line["error"] is None and line["custom_id"] == "c0"
    assert line["id"].startswith("batch_req_")
    response = line["response"]
    assert response["status_code"] == 200 and response["request_id"].startswith("req_")
    body = response["body"]
    assert body["choices"][0]["message"]["content"] == "hello"
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    assert body["created"] == 150


def test_line_ids_are_stable_per_request_and_differ_between_requests() -> None:
    batch = make_batch()
    again = openai.result_line(batch, row(RequestState.SUCCEEDED, result=REPLY))
    first = openai.result_line(batch, row(RequestState.SUCCEEDED, result=REPLY))
    other = openai.result_line(batch, row(RequestState.SUCCEEDED, 1, result=REPLY))
    assert json.dumps(first) == json.dumps(again)
    assert first["id"] != other["id"]


@pytest.mark.parametrize(
    ("error", "status"),
    [
        ({"type": "rate_limit_error", "message": "slow down", "status_code": 429}, 429),
        ({"type": "invalid_request_error", "message": "unknown model"}, 400),
        ({"type": "api_error", "message": "boom"}, 500),
    ],
)
def test_errored_line_carries_the_status_and_an_error_body(
    error: dict[str, Any], status: int
) -> None:
    stored = failures.RequestError.from_json(error)
    line = openai.result_line(make_batch(), row(RequestState.ERRORED, error=stored))
    assert line["error"] is None
    assert line["response"]["status_code"] == status
    assert line["response"]["body"]["error"]["message"] == error["message"]
    assert line["response"]["body"]["error"]["type"] == error["type"]


@pytest.mark.parametrize(
    ("state", "code"),
    [(RequestState.CANCELED, "batch_cancelled"), (RequestState.EXPIRED, "batch_expired")],
)
def test_unrun_request_line_has_an_error_code_and_no_response(
    state: RequestState, code: str
) -> None:
    line = openai.result_line(make_batch(), row(state))
    assert line["response"] is None and line["error"]["code"] == code


def test_result_file_ids_derive_from_the_batch_id() -> None:
    kind = file_model.FileKind.ERRORS
    assert result_files.file_id("batch_0123", kind) == "file-errors-0123"


# -- line splitting ------------------------------------------------------------


def test_lines_span_chunks_and_keep_physical_numbers() -> None:
    chunks = [b'\xef\xbb\xbf{"a"', b":1}\r\n\n  \n{", b'"b":2}\n{"c":3}']
    assert list(iter_lines(chunks)) == [(1, b'{"a":1}'), (4, b'{"b":2}'), (5, b'{"c":3}')]


def test_a_file_without_lines_yields_nothing() -> None:
    assert list(iter_lines([b"", b"\n\n", b"  "])) == []
