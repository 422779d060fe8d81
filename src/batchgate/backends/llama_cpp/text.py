"""Text on both sides of the model: chat messages in, reply text out.

Pure Python (no llama.cpp), so it is cheap to test and reason about.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable

from batchgate.backends import base
from batchgate.canonical import chat
from batchgate.wire.openai import completions
from batchgate.wire.openai.chat_completions import TranslationError


def prompt_text(request: chat.ChatRequest, render: Callable[[list[dict[str, str]]], str]) -> str:
    """The text the model continues. A raw prompt (a text completion's) is
    text to continue, as a completions user expects, so it goes to the model
    as it is; every other request is ``render``-ed by the chat template from
    :func:`chat_messages`."""
    if request.raw_prompt:
        try:
            return completions.prompt_of(request)
        except TranslationError as exc:
            raise base.UnsupportedRequest(exc.message) from None
    return render(chat_messages(request))


def chat_messages(request: chat.ChatRequest) -> list[dict[str, str]]:
    """The request as ``[{"role", "content"}]`` for the chat template: the
    text of each turn. The worker's capability check (backends/capability.py)
    has already refused tools, images and PDFs, which this engine declares it
    lacks; a text document is its tagged text; thinking blocks from earlier
    turns are dropped (the engine ignores ``thinking``).
    """
    messages: list[dict[str, str]] = []
    system = request.system_text()
    if system is not None:
        messages.append({"role": "system", "content": system})
    for message in request.messages:
        messages.append({"role": message.role, "content": _turn_text(message)})
    return messages


def _turn_text(message: chat.Message) -> str:
    """A turn's text blocks joined as they are, with each text document set
    apart by blank lines (PDFs were refused by the capability check)."""
    text = ""
    for block in message.blocks():
        if isinstance(block, chat.TextBlock):
            text += block.text
        elif isinstance(block, chat.DocumentBlock) and not block.source.is_pdf:
            before = "\n\n" if text and not text.endswith("\n\n") else ""
            text += before + block.prompt_text() + "\n\n"
    return text


class OutputText:
    """The reply text, grown one token piece at a time.

    Pieces are bytes: a multi-byte UTF-8 character may be split across tokens,
    so an incremental decoder holds the incomplete tail back until it is whole.
    Stop sequences are matched on the decoded text (so they are found across
    token boundaries) and cut off, as the Messages API does.
    """

    def __init__(self, stop_sequences: list[str] | None) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stops = [stop for stop in stop_sequences or [] if stop]
        self._longest = max((len(stop) for stop in self._stops), default=0)
        self.text = ""

    def feed(self, piece: bytes) -> str | None:
        """Append a token piece; return the stop sequence it completed, if any."""
        added = self._decoder.decode(piece)
        if not added:
            return None
        # Only a window reaching back one stop-length can hold a new match.
        start = max(0, len(self.text) - self._longest + 1)
        self.text += added
        best: tuple[int, str] | None = None
        for stop in self._stops:
            found = self.text.find(stop, start)
            if found >= 0 and (best is None or found < best[0]):
                best = (found, stop)
        if best is None:
            return None
        self.text = self.text[: best[0]]
        return best[1]

    def finish(self) -> str:
        """The final text (a dangling partial character becomes U+FFFD)."""
        self.text += self._decoder.decode(b"", final=True)
        return self.text
