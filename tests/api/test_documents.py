"""Anthropic ``document`` blocks, end to end through the official ``anthropic``
SDK (and the native dialect): a text document with citations, a PDF and a
plain request in one batch, on an Anthropic upstream (passed through, the
citations kept) and on an OpenAI-compatible one (the text document is prompt
text; the PDF ends that one request errored)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest

from batchgate import config
from tests import harness, openai_batches
from tests.api.test_anthropic_sdk import run_batch
from tests.fakes.upstream import FakeUpstream

ANTHROPIC_MODEL = "claude-fake"
OPENAI_MODEL = "openai-fake"
PDF_MODEL = "openai-pdf-fake"  # an OpenAI-compatible upstream that reads PDFs

# A one-page PDF, small enough to read.
PDF = base64.b64encode(
    b"%PDF-1.1\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
).decode()
TEXT_DOCUMENT = {
    "type": "document",
    "source": {
        "type": "text",
        "media_type": "text/plain",
        "data": "The grass is green. The sky is blue.",
    },
    "title": "doc.txt",
    "context": "a note about colours",
    "citations": {"enabled": True},
}
PDF_DOCUMENT = {
    "type": "document",
    "source": {"type": "base64", "media_type": "application/pdf", "data": PDF},
    "title": "report.pdf",
}


def ask(custom_id: str, model: str, question: str, *documents: dict[str, Any]) -> dict[str, Any]:
    content: list[dict[str, Any]] = [*documents, {"type": "text", "text": question}]
    return {
        "custom_id": custom_id,
        "params": {
            "model": model,
            "max_tokens": 64,
            "messages": [{"role": "user", "content": content}],
        },
    }


def mixed_batch(model: str) -> list[dict[str, Any]]:
    return [
        ask("text-doc", model, f"what colour is the grass? ({model})", TEXT_DOCUMENT),
        ask("pdf-doc", model, f"summarise the report ({model})", PDF_DOCUMENT),
        ask("plain", model, f"just say hi ({model})"),
    ]


@pytest.fixture
def server(
    tmp_path: Path, upstream: FakeUpstream, store_url: str
) -> Iterator[harness.RunningServer]:
    models = {
        ANTHROPIC_MODEL: config.ModelConfig(
            name=ANTHROPIC_MODEL, backend="anthropic", base_url=upstream.base_url, api_key_env=None
        ),
        OPENAI_MODEL: harness.openai_model(OPENAI_MODEL, upstream.openai_base_url),
        PDF_MODEL: harness.openai_model(PDF_MODEL, upstream.openai_base_url, supports_pdfs=True),
    }
    settings = harness.make_settings(tmp_path, models, database_url=store_url)
    with harness.serve(settings) as running:
        yield running


@pytest.fixture
def client(server: harness.RunningServer) -> Iterator[anthropic.Anthropic]:
    with server.anthropic(server.api_key, max_retries=0) as sdk:
        yield sdk


def test_anthropic_upstream_gets_documents_as_sent_and_citations_come_back(
    client: anthropic.Anthropic, upstream: FakeUpstream
) -> None:
    batch = mixed_batch(ANTHROPIC_MODEL)
    results = {line.custom_id: line.result for line in run_batch(client, batch)}

    assert [r.type for r in results.values()] == ["succeeded"] * 3
    for sent in batch:
        question = sent["params"]["messages"][0]["content"][-1]["text"]
        (call,) = upstream.calls(question)
        assert call["body"]["messages"] == sent["params"]["messages"]

    text_reply = results["text-doc"].message.content  # type: ignore[union-attr]
    assert text_reply[0].text.startswith("echo: what colour is the grass?")
    assert text_reply[0].citations is None
    (citation,) = text_reply[1].citations or []
    assert citation.type == "char_location"
    assert citation.cited_text == "The grass is green"
    assert (citation.document_index, citation.document_title) == (0, "doc.txt")
    assert (citation.start_char_index, citation.end_char_index) == (0, 18)
    # Without citations asked for, none come back.
    pdf_reply = results["pdf-doc"].message.content  # type: ignore[union-attr]
    assert [block.type for block in pdf_reply] == ["text"]


def test_openai_compatible_upstream_reads_a_text_document_and_errors_only_the_pdf(
    client: anthropic.Anthropic, upstream: FakeUpstream
) -> None:
    results = {line.custom_id: line.result for line in run_batch(client, mixed_batch(OPENAI_MODEL))}

    assert [r.type for r in results.values()] == ["succeeded", "errored", "succeeded"]
    error = results["pdf-doc"].error.error  # type: ignore[union-attr]
    assert error.type == "invalid_request_error"
    assert error.message == (
        f"model '{OPENAI_MODEL}' cannot read PDF documents, and messages[0] has one "
        "(base64 source); it serves text and images (text documents included)"
    )
    # The PDF never reached the upstream; the text document went as a text part.
    sent = [call["body"]["messages"] for call in upstream.calls()]
    plain_messages, text_messages = sorted(sent, key=lambda m: isinstance(m[0]["content"], list))
    assert plain_messages == [{"role": "user", "content": f"just say hi ({OPENAI_MODEL})"}]
    document_part, question_part = text_messages[0]["content"]
    assert document_part["text"] == (
        "<document>\n<source>doc.txt</source>\n<context>a note about colours</context>\n"
        "<document_content>\nThe grass is green. The sky is blue.\n</document_content>\n"
        "</document>"
    )
    assert question_part == {"type": "text", "text": f"what colour is the grass? ({OPENAI_MODEL})"}


def test_a_native_request_takes_the_same_document_blocks(
    server: harness.RunningServer, upstream: FakeUpstream
) -> None:
    with server.client() as http:
        created = http.post("/v1/batches", json={"requests": mixed_batch(ANTHROPIC_MODEL)})
        assert created.status_code == 200, created.text
        server.wait_ended(created.json()["id"])
        body = http.get(f"/v1/batches/{created.json()['id']}").text
    lines = {line["custom_id"]: line["result"] for line in map(json.loads, body.splitlines())}
    assert [r["type"] for r in lines.values()] == ["succeeded"] * 3
    cited = lines["text-doc"]["message"]["content"][1]
    assert cited["citations"][0]["type"] == "char_location"
    question = f"summarise the report ({ANTHROPIC_MODEL})"
    (call,) = upstream.calls(question)
    assert call["body"]["messages"][0]["content"][0] == PDF_DOCUMENT


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            {"type": "base64", "media_type": "image/png", "data": PDF},
            "a base64 document source has media_type 'application/pdf', got 'image/png'",
        ),
        ({"type": "text", "media_type": "text/plain"}, "needs 'media_type' and 'data'"),
        ({"type": "file", "file_id": "file_1"}, "send the document inline"),
    ],
)
def test_a_malformed_document_refuses_the_batch_naming_the_block(
    client: anthropic.Anthropic, source: Any, message: str
) -> None:
    document = {"type": "document", "source": source}
    with pytest.raises(anthropic.BadRequestError) as refused:
        client.messages.batches.create(
            requests=[ask("ok", ANTHROPIC_MODEL, "hi"), ask("bad", ANTHROPIC_MODEL, "q", document)]
        )
    text = str(refused.value)
    assert "requests[1].params.messages[0].content[0]" in text
    assert message in text
    assert list(client.messages.batches.list()) == []


def test_an_openai_file_part_is_a_pdf_document_on_every_upstream(
    server: harness.RunningServer, upstream: FakeUpstream
) -> None:
    file_part = {
        "type": "file",
        "file": {"filename": "report.pdf", "file_data": f"data:application/pdf;base64,{PDF}"},
    }

    def line(model: str) -> dict[str, Any]:
        content = [file_part, {"type": "text", "text": f"summarise it ({model})"}]
        return openai_batches.line(
            model,
            "/v1/chat/completions",
            model=model,
            max_tokens=32,
            messages=[{"role": "user", "content": content}],
        )

    with server.openai() as sdk:
        models = [ANTHROPIC_MODEL, PDF_MODEL, OPENAI_MODEL]
        batch = openai_batches.run(sdk, "/v1/chat/completions", [line(m) for m in models])
        succeeded = openai_batches.result_lines(sdk, batch.output_file_id)
        failed = openai_batches.result_lines(sdk, batch.error_file_id)

    assert sorted(succeeded) == [ANTHROPIC_MODEL, PDF_MODEL] and list(failed) == [OPENAI_MODEL]
    message = failed[OPENAI_MODEL]["response"]["body"]["error"]["message"]
    assert message.startswith(f"model '{OPENAI_MODEL}' cannot read PDF documents")
    (to_claude,) = upstream.calls(f"summarise it ({ANTHROPIC_MODEL})")
    assert to_claude["body"]["messages"][0]["content"][0] == {**PDF_DOCUMENT, "title": "report.pdf"}
    (to_openai,) = [call for call in upstream.calls() if call["path"].endswith("/chat/completions")]
    assert to_openai["body"]["messages"][0]["content"][0] == file_part
