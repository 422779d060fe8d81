"""Translation between the canonical chat types and OpenAI's Responses API
(``/v1/responses``), pure, both ways:

* :func:`request_from_responses` reads an input line's ``body`` into a
  :class:`chat.ChatRequest` (``settings_echoed``), strictly;
* :func:`response_to_responses` renders a canonical reply as a ``response``
  object for the output file, echoing the request's settings;
* :func:`request_to_responses` / :func:`response_from_responses` talk to an
  upstream that serves ``/responses`` itself.

What maps onto a chat request: ``instructions`` and system/developer
messages (the one system prompt, in order), input items (messages with
``input_text``/``input_image`` and earlier ``output_text``/``refusal``,
``function_call`` and ``function_call_output``), ``max_output_tokens``
(default 4096: Messages needs a limit), ``temperature``, ``top_p``,
``text.format`` (as ``response_format``), ``reasoning.effort`` (as thinking,
like Chat Completions' ``reasoning_effort``), function ``tools``,
``tool_choice`` and ``parallel_tool_calls``. Earlier ``reasoning`` items are
left out (only OpenAI's own models read them back). Refused on the line, as
settings nobody here can honour: built-in tools (``web_search``,
``file_search``, ...), ``previous_response_id``, ``conversation``,
``prompt``, ``background``, ``stream``, ``include``, ``max_tool_calls``,
``top_logprobs``, ``truncation: "auto"``, file inputs, and other item types.
``metadata`` and ``user`` are kept (no backend reads them; the Response
object echoes them, as OpenAI's does). ``store``, ``service_tier``,
``safety_identifier`` and prompt-cache hints are accepted and dropped.
"""

from batchgate.wire.openai.responses.inbound import (
    DEFAULT_MAX_OUTPUT_TOKENS,
    request_from_responses,
)
from batchgate.wire.openai.responses.outbound import request_to_responses
from batchgate.wire.openai.responses.replies import (
    response_from_responses,
    response_to_responses,
    usage_to_responses,
)

__all__ = [
    "DEFAULT_MAX_OUTPUT_TOKENS",
    "request_from_responses",
    "request_to_responses",
    "response_from_responses",
    "response_to_responses",
    "usage_to_responses",
]
