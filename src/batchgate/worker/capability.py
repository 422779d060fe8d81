"""The worker's one check of a request against what its model's backend can
do, before the request is handed over, for every backend alike: a request
the model cannot honour ends ``errored`` at once (never retried), with a
message naming the model and what it lacks.

Each rule looks at the backend's :class:`~batchgate.backends.base.Capabilities`
and the canonical request and returns the reason it cannot be served, or
None. A new capability is one more rule in :data:`RULES`.

Thinking is refused only where the client's own API would refuse it: a
``/v1/responses`` line's ``reasoning.effort`` (other than ``none``) on a
model with no reasoning control, because the Response would echo an effort
that was never applied. A Messages ``thinking`` or a Chat Completions
``reasoning_effort`` is an optional param the backend drops, as DESIGN.md
section 4 says and as every client written against wave one relies on (the
documented native example sends ``thinking`` to the embedded model); so are
``metadata`` and thinking blocks of earlier turns.
"""

from __future__ import annotations

from collections.abc import Callable

from batchgate import canonical, chat
from batchgate.backends import base

Rule = Callable[[base.Capabilities, canonical.Request], str | None]


def _kind(capabilities: base.Capabilities, request: canonical.Request) -> str | None:
    kind = canonical.kind_of(request)
    if kind in capabilities.serves:
        return None
    served = ", ".join(sorted(k.value for k in capabilities.serves)) or "nothing"
    return f"does not serve {kind.value} requests; it serves: {served}"


def _tools(capabilities: base.Capabilities, request: canonical.Request) -> str | None:
    if capabilities.tools or not isinstance(request, chat.ChatRequest):
        return None
    if request.tools:
        return "does not support tool use; send the request without `tools`"
    for index, block in _blocks(request):
        if isinstance(block, chat.ToolUseBlock | chat.ToolResultBlock):
            return f"does not support tool use, and messages[{index}] has a {block.type} block"
    return None


def _images(capabilities: base.Capabilities, request: canonical.Request) -> str | None:
    if capabilities.images or not isinstance(request, chat.ChatRequest):
        return None
    for index, block in _blocks(request):
        if isinstance(block, chat.ImageBlock):
            return f"serves text only, and messages[{index}] has an image block"
    return None


def _pdfs(capabilities: base.Capabilities, request: canonical.Request) -> str | None:
    if capabilities.pdfs or not isinstance(request, chat.ChatRequest):
        return None
    for index, block in _blocks(request):
        if isinstance(block, chat.DocumentBlock) and block.source.is_pdf:
            serves = "text and images" if capabilities.images else "text only"
            return (
                f"cannot read PDF documents, and messages[{index}] has one "
                f"({block.source.type} source); it serves {serves} (text documents included)"
            )
    return None


def _stop_sequences(capabilities: base.Capabilities, request: canonical.Request) -> str | None:
    if capabilities.stop_sequences or not isinstance(request, chat.ChatRequest):
        return None
    if request.stop_sequences:
        return "does not support stop sequences; send the request without `stop_sequences`"
    return None


def _thinking(capabilities: base.Capabilities, request: canonical.Request) -> str | None:
    if capabilities.thinking or not isinstance(request, chat.ChatRequest):
        return None
    if request.origin != "responses":
        return None
    if request.thinking is None or request.thinking.type == "disabled":
        return None
    return "does not support reasoning effort; send the line without `reasoning.effort`"


RULES: tuple[Rule, ...] = (_kind, _tools, _images, _pdfs, _stop_sequences, _thinking)


def check(model: str, capabilities: base.Capabilities, request: canonical.Request) -> None:
    """Raise :class:`base.UnsupportedRequest` if ``model`` cannot serve ``request``."""
    for rule in RULES:
        reason = rule(capabilities, request)
        if reason is not None:
            raise base.UnsupportedRequest(f"model {model!r} {reason}")


def _blocks(request: chat.ChatRequest) -> list[tuple[int, chat.ContentBlock]]:
    return [(index, block) for index, m in enumerate(request.messages) for block in m.blocks()]
