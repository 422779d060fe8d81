"""The llama_cpp backend's pure parts: options, message flattening, reply text."""

from __future__ import annotations

import pytest

from batchgate.backends import base, capability, llama_cpp
from batchgate.backends.llama_cpp import options, text
from batchgate.canonical import chat


def test_unknown_option_is_named_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown llama_cpp option\(s\) n_paralel.*n_parallel"):
        options.parse("m", {"n_paralel": 4})


def test_invalid_option_value_is_rejected() -> None:
    with pytest.raises(ValueError, match="invalid llama_cpp options"):
        options.parse("m", {"n_parallel": 0})


def test_model_path_string_from_toml_is_accepted() -> None:
    assert str(options.parse("m", {"model_path": "/x/y.gguf"}).model_path) == "/x/y.gguf"


def _request(**fields: object) -> chat.ChatRequest:
    return chat.ChatRequest.model_validate(
        {"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}], **fields}
    )


def test_system_and_turns_become_template_messages_without_thinking() -> None:
    request = _request(
        system=[{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
        messages=[
            {"role": "user", "content": "q1"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm"},
                    {"type": "text", "text": "r1"},
                ],
            },
            {"role": "user", "content": "q2"},
        ],
        thinking={"type": "enabled", "budget_tokens": 1024},
    )
    assert text.chat_messages(request) == [
        {"role": "system", "content": "a\n\nb"},
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "r1"},
        {"role": "user", "content": "q2"},
    ]


def _engine_capabilities() -> base.Capabilities:
    # The model loads on the first request only: building the backend is cheap.
    return llama_cpp.LlamaCppBackend(options.parse("m", {})).capabilities


def test_tools_are_refused() -> None:
    request = _request(tools=[{"name": "f", "input_schema": {"type": "object"}}])
    with pytest.raises(base.UnsupportedRequest, match="tool use"):
        capability.check("m", _engine_capabilities(), request)


def test_empty_tools_are_fine() -> None:
    capability.check("m", _engine_capabilities(), _request(tools=[]))
    assert text.chat_messages(_request(tools=[])) == [{"role": "user", "content": "hi"}]


def test_images_are_refused() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "x"}}
    request = _request(messages=[{"role": "user", "content": [image]}])
    with pytest.raises(base.UnsupportedRequest, match="image"):
        capability.check("m", _engine_capabilities(), request)


def test_utf8_split_across_pieces_is_reassembled() -> None:
    out = text.OutputText(None)
    euro = "€".encode()
    assert out.feed(b"1 " + euro[:1]) is None
    assert out.text == "1 "  # the partial character is held back
    out.feed(euro[1:])
    assert out.finish() == "1 €"


def test_stop_sequence_across_pieces_is_cut_off() -> None:
    out = text.OutputText(["END", "xyz"])
    for piece in (b"abc E", b"N", b"D tail"):
        stop = out.feed(piece)
    assert stop == "END"
    assert out.finish() == "abc "


def test_earliest_stop_sequence_wins() -> None:
    out = text.OutputText(["cd", "bcde"])
    assert out.feed(b"abcdef") == "bcde"
    assert out.text == "a"


def test_dangling_partial_character_becomes_replacement() -> None:
    out = text.OutputText(None)
    out.feed("é".encode()[:1])
    assert out.finish() == "\ufffd"


def test_batch_must_hold_one_token_per_slot() -> None:
    with pytest.raises(ValueError, match="n_batch"):
        options.parse("m", {"n_parallel": 32, "n_batch": 16})


def test_a_text_document_is_tagged_prompt_text_set_apart_from_the_question() -> None:
    document = {
        "type": "document",
        "source": {"type": "content", "content": [{"type": "text", "text": "chunk one"}]},
        "title": "notes",
        "citations": {"enabled": True},
    }
    request = _request(
        messages=[{"role": "user", "content": [{"type": "text", "text": "see:"}, document]}]
    )
    assert text.chat_messages(request)[0]["content"] == (
        "see:\n\n<document>\n<source>notes</source>\n"
        "<document_content>\nchunk one\n</document_content>\n</document>\n\n"
    )


def test_pdf_documents_are_refused_by_the_engine_capabilities() -> None:
    pdf = {"type": "document", "source": {"type": "url", "url": "https://x/a.pdf"}}
    request = _request(messages=[{"role": "user", "content": [pdf, {"type": "text", "text": "q"}]}])
    with pytest.raises(base.UnsupportedRequest, match="cannot read PDF documents"):
        capability.check("m", _engine_capabilities(), request)


def test_a_raw_prompt_is_continued_as_it_is_and_a_chat_turn_is_templated() -> None:
    def template(messages: list[dict[str, str]]) -> str:
        return "".join(f"<{m['role']}>{m['content']}" for m in messages)

    raw = chat.ChatRequest(
        model="m",
        max_tokens=8,
        messages=[chat.Message(role="user", content="Once upon")],
        raw_prompt=True,
    )
    assert text.prompt_text(raw, template) == "Once upon"
    turn = raw.model_copy(update={"raw_prompt": None})
    assert text.prompt_text(turn, template) == "<user>Once upon"
