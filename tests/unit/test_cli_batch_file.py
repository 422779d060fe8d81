"""`submit` and `run` read a batch file: its format from its lines, and
every bad line named by its line number."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batchgate.cli import batch_file
from batchgate.domain import errors

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def native(custom_id: str, **params: object) -> str:
    base = {"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    return json.dumps({"custom_id": custom_id, "params": {**base, **params}})


def openai_line(custom_id: str, url: str = "/v1/chat/completions", **body: object) -> str:
    base = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    return json.dumps(
        {"custom_id": custom_id, "method": "POST", "url": url, "body": {**base, **body}}
    )


def write(tmp_path: Path, *lines: str) -> str:
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def refusal(path: str) -> str:
    with pytest.raises(errors.InvalidRequest) as raised:
        batch_file.read(path)
    return raised.value.message


def test_the_examples_are_named_for_their_format() -> None:
    native_file = batch_file.read(str(EXAMPLES / "native-requests.jsonl"))
    openai_file = batch_file.read(str(EXAMPLES / "openai-chat-requests.jsonl"))
    assert native_file.format is batch_file.Format.NATIVE
    assert openai_file.format is batch_file.Format.OPENAI
    assert openai_file.endpoint == "/v1/chat/completions"
    assert 3 <= len(native_file.lines) <= 5 and 3 <= len(openai_file.lines) <= 5
    body = json.loads(native_file.native_body())
    assert {r["params"]["model"] for r in body["requests"]} == {"smollm2-135m-instruct"}


def test_every_bad_native_line_is_named_by_its_line_number(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        native("a"),
        "",  # blank lines count, as an editor counts them
        json.dumps({"custom_id": "b", "params": {"model": "m", "messages": []}}),
        "{not json",
        native("a"),
        native("c", temperature=1.5),
        openai_line("d"),
    )
    message = refusal(path)
    assert message.startswith(f"{path} (native) has 5 bad lines")
    assert "line 3: params.max_tokens: Field required" in message
    assert "line 4: not valid JSON" in message and "line 1 column" not in message
    assert "line 5: custom_id 'a' was already used on line 1" in message
    assert "line 6: params.temperature" in message
    assert "line 7: an OpenAI-format line" in message
    assert "requests[" not in message


def test_the_list_stops_at_a_cap_and_counts_the_rest(tmp_path: Path) -> None:
    bad = batch_file.MAX_LISTED + 7
    path = write(tmp_path, *["[]"] * bad)
    message = refusal(path)
    assert f"has {bad} bad lines" in message
    assert f"line {batch_file.MAX_LISTED}: not a JSON object" in message
    assert f"line {batch_file.MAX_LISTED + 1}:" not in message
    assert message.endswith("... and 7 more")


def test_an_openai_file_is_recognised_and_its_lines_checked(tmp_path: Path) -> None:
    good = write(tmp_path, openai_line("a"), openai_line("b"))
    read = batch_file.read(good)
    assert (read.format, read.endpoint, read.lines) == (
        batch_file.Format.OPENAI,
        "/v1/chat/completions",
        [1, 2],
    )
    path = write(
        tmp_path,
        openai_line("a"),
        openai_line("b", url="/v1/embeddings"),
        json.dumps({"custom_id": "c", "method": "POST", "url": "/v1/chat/completions"}),
        openai_line("a"),
    )
    message = refusal(path)
    assert "(OpenAI-format) has 3 bad lines" in message
    assert "line 2: url '/v1/embeddings' does not match" in message
    assert "line 3: missing required field 'body'" in message
    assert "line 4: custom_id 'a' was already used on line 1" in message


def test_an_openai_file_on_an_endpoint_nobody_serves(tmp_path: Path) -> None:
    message = refusal(write(tmp_path, openai_line("a", url="/v1/images")))
    assert "line 1: url '/v1/images' is not an endpoint batchgate serves" in message


def test_a_server_message_about_a_request_index_names_the_line() -> None:
    lines = [1, 3, 4]
    assert batch_file.name_lines("requests[2].params.messages: too long", lines) == (
        "line 4: params.messages: too long"
    )
    duplicate = "duplicate custom_id 'x' at requests[2] (first used at requests[0])"
    assert batch_file.name_lines(duplicate, lines) == (
        "duplicate custom_id 'x' at line 4 (first used at line 1)"
    )
