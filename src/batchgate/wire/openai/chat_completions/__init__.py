"""Translation between the canonical chat types and OpenAI Chat Completions.

Four pure functions, no I/O:

* :func:`request_from_chat_completions` reads an OpenAI-dialect input line's
  ``body`` into a :class:`chat.ChatRequest` (strictly: unknown or wrong-typed
  fields raise :class:`TranslationError` with a dotted ``param`` path).
* :func:`request_to_chat_completions` writes a canonical request as the body
  sent to an OpenAI-compatible server (vLLM, SGLang, llama-server, Ollama, ...).
* :func:`response_from_chat_completion` reads such a server's reply.
* :func:`response_to_chat_completion` renders a canonical reply as a
  ``chat.completion`` object for the OpenAI dialect's output file.

Decisions the Chat Completions shape leaves open, and how they are made here:

* ``max_tokens`` / ``max_completion_tokens`` are optional in Chat Completions but
  required in Messages. When both are absent :data:`DEFAULT_MAX_TOKENS` is
  used; when both are present ``max_completion_tokens`` (the newer one) wins.
* ``system`` and ``developer`` messages, wherever they appear, become the one
  ``system`` prompt (Messages has a single system prompt), in order.
* Consecutive messages of the same Messages role are merged into one turn, so
  ``tool`` messages (which become ``tool_result`` blocks in a user turn) and a
  following ``user`` message form one user turn, tool results first.
* ``reasoning_effort`` becomes ``thinking: enabled`` with a budget from
  :data:`REASONING_BUDGETS`, capped below ``max_tokens`` (Messages requires
  ``budget_tokens < max_tokens``) but never under 1024 (the Messages minimum);
  ``"none"`` becomes ``thinking: disabled``. Going back, a budget maps to the
  effort whose budget range holds it (see :func:`effort_for_budget`).
* Parameters that only have a neutral value in Messages (``presence_penalty``,
  ``frequency_penalty``, ``logprobs``, ``logit_bias``, ...) are accepted when
  neutral and rejected otherwise, so nobody silently loses a setting.
  ``metadata``, ``user``, ``store`` and ``service_tier`` are dropped;
  ``stream: true`` is rejected (a batch has nobody to stream to).
* ``top_k`` is accepted as an extension (vLLM, SGLang, llama-server and Ollama
  read it) and sent to OpenAI-compatible servers as a top-level field.
"""

from batchgate.wire.openai.chat_completions.access import (
    DEFAULT_MAX_TOKENS,
    REASONING_BUDGETS,
    MaxTokensField,
    TranslationError,
)
from batchgate.wire.openai.chat_completions.inbound import (
    effort_for_budget,
    request_from_chat_completions,
)
from batchgate.wire.openai.chat_completions.outbound import request_to_chat_completions
from batchgate.wire.openai.chat_completions.replies import (
    response_from_chat_completion,
    response_to_chat_completion,
)

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "REASONING_BUDGETS",
    "MaxTokensField",
    "TranslationError",
    "effort_for_budget",
    "request_from_chat_completions",
    "request_to_chat_completions",
    "response_from_chat_completion",
    "response_to_chat_completion",
]
