"""The named input limits (dialects/input_limits.py), each naming its path."""

from __future__ import annotations

from typing import Any

import pytest

from batchgate.canonical import chat
from batchgate.dialects import input_limits
from batchgate.domain import errors

LIMITS = input_limits.InputLimits(max_messages=3, max_string_chars=100, max_json_depth=4)


def _request(**fields: Any) -> chat.ChatRequest:
    fields.setdefault("model", "m")
    fields.setdefault("max_tokens", 16)
    fields.setdefault("messages", [{"role": "user", "content": "hi"}])
    return chat.ChatRequest.model_validate(fields)


def _param(request: chat.ChatRequest) -> str | None:
    try:
        input_limits.check_request(request, LIMITS, "requests[7].params")
    except errors.InvalidRequest as exc:
        return exc.param
    return None


def test_a_request_within_every_limit_passes() -> None:
    assert _param(_request()) is None


def test_too_many_messages() -> None:
    messages = [{"role": "user", "content": "x"}] * 4
    assert _param(_request(messages=messages)) == "requests[7].params.messages"


def test_a_long_string_is_named_by_its_path() -> None:
    messages = [
        {"role": "user", "content": "ok"},
        {"role": "assistant", "content": [{"type": "text", "text": "y" * 101}]},
    ]
    assert _param(_request(messages=messages)) == "requests[7].params.messages[1].content[0].text"
    assert _param(_request(system="s" * 101)) == "requests[7].params.system"


def test_a_long_string_inside_a_tool_schema_is_found() -> None:
    tool = {"name": "t", "input_schema": {"type": "object", "description": "d" * 101}}
    assert _param(_request(tools=[tool])) == "requests[7].params.tools[0].input_schema.description"


def test_nesting_deeper_than_the_limit_in_free_form_json() -> None:
    deep: dict[str, Any] = {"type": "object"}
    for _ in range(5):
        deep = {"type": "object", "properties": {"a": deep}}
    assert _param(_request(tools=[{"name": "t", "input_schema": deep}])) == (
        "requests[7].params.tools[0]"
    )
    assert _param(_request(tools=[{"name": "t", "input_schema": {"a": {"b": 1}}}])) is None


def test_a_model_name_longer_than_the_store_keeps() -> None:
    assert _param(_request(model="m" * 201)) == "requests[7].params.model"


@pytest.mark.parametrize("custom_id", ["a" * 64, "A-b_9"])
def test_anthropic_custom_ids_that_match_its_pattern(custom_id: str) -> None:
    input_limits.check_custom_id(custom_id, "requests[0].custom_id", anthropic=True)


@pytest.mark.parametrize("custom_id", ["a" * 65, "has space", "dot.ted", ""])
def test_anthropic_custom_ids_outside_its_pattern(custom_id: str) -> None:
    with pytest.raises(errors.InvalidRequest) as raised:
        input_limits.check_custom_id(custom_id, "requests[0].custom_id", anthropic=True)
    assert raised.value.param == "requests[0].custom_id"


@pytest.mark.parametrize("custom_id", ["request 1/\u00e9", "x" * 256, "a.b:c"])
def test_native_and_openai_custom_ids_allow_any_printable_text(custom_id: str) -> None:
    input_limits.check_custom_id(custom_id, "custom_id", anthropic=False)


@pytest.mark.parametrize("custom_id", ["x" * 257, "", "new\nline", "tab\there"])
def test_native_and_openai_custom_ids_refused(custom_id: str) -> None:
    with pytest.raises(errors.InvalidRequest):
        input_limits.check_custom_id(custom_id, "custom_id", anthropic=False)


def test_integers_past_64_bits_are_refused_where_they_are() -> None:
    assert _param(_request(max_tokens=2**64)) == "requests[7].params.max_tokens"
    assert _param(_request(metadata={"n": [1, -(2**70)]})) == "requests[7].params.metadata.n[1]"
    assert _param(_request(seed=2**63 - 1)) is None


def test_a_text_document_is_bounded_like_any_string_and_a_pdf_like_an_image() -> None:
    def document(source: dict[str, Any], **fields: Any) -> chat.ChatRequest:
        block = {"type": "document", "source": source, **fields}
        return _request(
            messages=[{"role": "user", "content": [{"type": "text", "text": "q"}, block]}]
        )

    where = "requests[7].params.messages[0].content[1]"
    text = {"type": "text", "media_type": "text/plain", "data": "d" * 101}
    assert _param(document(text)) == f"{where}.source.data"
    assert _param(document({**text, "data": "ok"}, title="t" * 101)) == f"{where}.title"
    pdf = {"type": "base64", "media_type": "application/pdf", "data": "J" * 1000}
    assert _param(document(pdf)) is None
