"""Anthropic ``document`` blocks on the real embedded SmolLM2 model, through
the official ``anthropic`` SDK: a text document is prompt text the model
answers from, a PDF ends that one request errored (the engine cannot read
PDFs), and the plain request beside them succeeds."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchgate import config
from tests import harness
from tests.api.test_anthropic_sdk import run_batch
from tests.api.test_documents import PDF_DOCUMENT

pytestmark = pytest.mark.slow

MODEL = config.DEFAULT_MODEL_NAME
TEXT_DOCUMENT = {
    "type": "document",
    "source": {
        "type": "text",
        "media_type": "text/plain",
        "data": "The secret password is BLUEBERRY.",
    },
    "title": "notes.txt",
    "citations": {"enabled": True},
}


def ask(custom_id: str, question: str, *documents: dict[str, object]) -> dict[str, object]:
    return {
        "custom_id": custom_id,
        "params": {
            "model": MODEL,
            "max_tokens": 24,
            "temperature": 0,
            "system": "You are a helpful assistant.",
            "messages": [
                {"role": "user", "content": [*documents, {"type": "text", "text": question}]}
            ],
        },
    }


def test_embedded_model_answers_a_text_document_and_errors_a_pdf(tmp_path: Path) -> None:
    settings = harness.make_settings(tmp_path, config.default_models())
    batch = [
        ask("text-doc", "What is the secret password?", TEXT_DOCUMENT),
        ask("pdf-doc", "Summarise the report.", PDF_DOCUMENT),
        ask("plain", "What is the capital of France?"),
    ]
    with (
        harness.serve(settings) as server,
        server.anthropic(max_retries=0) as sdk,
    ):
        results = {line.custom_id: line.result for line in run_batch(sdk, batch, timeout=300)}

    assert [result.type for result in results.values()] == ["succeeded", "errored", "succeeded"]
    # The password exists only in the document: the model read it.
    answer = results["text-doc"].message.content[0]  # type: ignore[union-attr]
    assert answer.type == "text" and "BLUEBERRY" in answer.text
    error = results["pdf-doc"].error.error  # type: ignore[union-attr]
    assert error.type == "invalid_request_error"
    assert error.message == (
        f"model '{MODEL}' cannot read PDF documents, and messages[0] has one "
        "(base64 source); it serves text only (text documents included)"
    )
    plain = results["plain"].message.content[0]  # type: ignore[union-attr]
    assert plain.type == "text" and "Paris" in plain.text
