"""A Responses line's ``input_file`` (a PDF) is a PDF document block, and a
document goes back out to a Responses upstream as the part it came from."""

from __future__ import annotations

from typing import Any

import pytest

from batchgate.canonical import chat
from batchgate.wire.openai import responses as responses_api
from batchgate.wire.openai.chat_completions import TranslationError

PDF_DATA = "data:application/pdf;base64,JVBERi0x"


def line(*parts: dict[str, Any], role: str = "user") -> dict[str, Any]:
    return {
        "model": "m",
        "input": [{"role": role, "content": [*parts, {"type": "input_text", "text": "q"}]}],
    }


@pytest.mark.parametrize(
    ("part", "source"),
    [
        (
            {"type": "input_file", "filename": "a.pdf", "file_data": PDF_DATA},
            {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"},
        ),
        (
            {"type": "input_file", "filename": "a.pdf", "file_url": "https://x/a.pdf"},
            {"type": "url", "url": "https://x/a.pdf"},
        ),
    ],
)
def test_an_input_file_is_a_pdf_document_and_goes_out_as_it_came(
    part: dict[str, Any], source: dict[str, Any]
) -> None:
    request = responses_api.request_from_responses(line(part))
    document = request.messages[0].blocks()[0]
    assert isinstance(document, chat.DocumentBlock) and document.title == "a.pdf"
    assert document.source.model_dump(exclude_none=True) == source
    sent = responses_api.request_to_responses(request, upstream_model="u")
    assert sent["input"][0]["content"][0] == part


@pytest.mark.parametrize(
    ("part", "role", "param"),
    [
        ({"type": "input_file", "file_id": "file-1"}, "user", "input[0].content[0].file_id"),
        (
            {"type": "input_file", "file_data": "data:image/png;base64,AA=="},
            "user",
            "input[0].content[0].file_data",
        ),
        ({"type": "input_file", "file_data": PDF_DATA}, "developer", "input[0].content"),
    ],
)
def test_an_input_file_that_cannot_be_a_pdf_document_is_refused_on_its_line(
    part: dict[str, Any], role: str, param: str
) -> None:
    with pytest.raises(TranslationError) as refused:
        responses_api.request_from_responses(line(part, role=role))
    assert refused.value.param.endswith(param)


def test_an_input_file_in_a_function_call_output_is_refused_not_dropped() -> None:
    output = {
        "type": "function_call_output",
        "call_id": "c1",
        "output": [{"type": "input_file", "file_data": PDF_DATA}],
    }
    call = {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"}
    with pytest.raises(TranslationError, match="function_call_output") as refused:
        responses_api.request_from_responses(
            {"model": "m", "input": [{"role": "user", "content": "q"}, call, output]}
        )
    assert refused.value.param.endswith("input[2].output")
