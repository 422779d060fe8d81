"""The one check of a request against what its model's backend can do, for
every backend alike (built-in or plugin), at submit and at dispatch.

Each rule looks at the backend's :class:`~batchgate.backends.base.Capabilities`
and the canonical request and returns why it cannot be served, or None. A
new capability is one more rule in :data:`RULES`; a limit on a value the
client chose (the context window on ``max_tokens``) is one in
:data:`FIELD_RULES`, under the field it reads.

Where it runs, and what a refusal does there (what the dialects' users
expect):

* At submit (services/batch_create.py, services/file_batches.py), against the
  capabilities the model's backend declares (registry.capabilities, or the
  backend itself where this process built one). A ``max_tokens`` above the
  model's context window is the client's value out of range, like any
  other: a 4xx naming the line and ``max_tokens`` (an OpenAI file's line
  error), nothing stored. Anything else the model lacks is the request's
  failure, not the batch's: the row is stored already ``errored``, with the
  message the worker would have written, as for a model the server does not
  serve; it holds no queue slot and no quota.
* At dispatch (worker/loop.py), against the built backend, which
  configuration may have changed since: any refusal ends the row
  ``errored`` at once (never retried).

Thinking is refused only where the client's own API would refuse it: a
reasoning effort (other than ``none``) in a request whose reply echoes its
settings (``settings_echoed``: a ``/v1/responses`` line) on a model with no
reasoning control, because the Response would echo an effort that was never
applied. A Messages ``thinking`` or a Chat Completions
``reasoning_effort`` is an optional param the backend drops (DESIGN.md
section 4, "Backends": unsupported optional params are dropped and
documented per backend); so are ``metadata`` and thinking blocks of earlier
turns. A ``max_tokens`` the client did not choose (the endpoint's default)
is capped by the backend at its context rather than refused.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from batchgate import canonical
from batchgate.backends import base
from batchgate.canonical import chat
from batchgate.domain.states import RequestKind

Rule = Callable[[base.Capabilities, canonical.Request], str | None]


@dataclasses.dataclass(frozen=True)
class Refusal:
    """Why a model cannot serve a request. ``field``: the request's own
    value that is out of the model's range (a 4xx at submit), or None when
    the model lacks a capability (the request errors)."""

    reason: str
    field: str | None = None

    def error(self, model: str) -> base.UnsupportedRequest:
        return base.UnsupportedRequest(f"model {model!r} {self.reason}")


def _context_window(capabilities: base.Capabilities, request: canonical.Request) -> str | None:
    window = capabilities.max_context
    if window is None or not isinstance(request, chat.ChatRequest):
        return None
    if request.max_tokens_defaulted or request.max_tokens <= window:
        return None
    return (
        f"has a context window of {window} tokens, less than max_tokens "
        f"({request.max_tokens}); ask for at most {window}"
    )


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
    if not request.settings_echoed:
        return None
    if request.thinking is None or request.thinking.type == "disabled":
        return None
    return "does not support reasoning effort; send the line without `reasoning.effort`"


RULES: tuple[Rule, ...] = (_kind, _tools, _images, _pdfs, _stop_sequences, _thinking)
# Rules on a value the client chose, by the field they read.
FIELD_RULES: tuple[tuple[str, Rule], ...] = (("max_tokens", _context_window),)


def refusal(capabilities: base.Capabilities, request: canonical.Request) -> Refusal | None:
    """The first reason a backend with ``capabilities`` cannot serve ``request``."""
    for field, field_rule in FIELD_RULES:
        reason = field_rule(capabilities, request)
        if reason is not None:
            return Refusal(reason, field)
    for rule in RULES:
        reason = rule(capabilities, request)
        if reason is not None:
            return Refusal(reason)
    return None


def check(model: str, capabilities: base.Capabilities, request: canonical.Request) -> None:
    """Raise :class:`base.UnsupportedRequest` if ``model`` cannot serve ``request``."""
    refused = refusal(capabilities, request)
    if refused is not None:
        raise refused.error(model)


def declared(backend: base.Backend) -> base.Capabilities:
    """What a built backend can serve: its declared capabilities, less
    embeddings when it has no ``embed`` method (a plugin's mistake), so that
    its embeddings requests are refused by the check like any other kind it
    does not serve."""
    capabilities = backend.capabilities
    if RequestKind.EMBEDDINGS in capabilities.serves and not isinstance(
        backend, base.EmbeddingBackend
    ):
        served = capabilities.serves - {RequestKind.EMBEDDINGS}
        return dataclasses.replace(capabilities, serves=served)
    return capabilities


def _blocks(request: chat.ChatRequest) -> list[tuple[int, chat.ContentBlock]]:
    return [(index, block) for index, m in enumerate(request.messages) for block in m.blocks()]
