"""The canonical chat request -> a Responses API body (for upstreams that
serve ``/responses`` themselves), and the request settings a ``response``
object echoes."""

from __future__ import annotations

from typing import Any

from batchgate.canonical import chat
from batchgate.wire.openai.chat_completions.access import TranslationError
from batchgate.wire.openai.chat_completions.inbound import effort_for_budget
from batchgate.wire.openai.chat_completions.outbound import _image_to_wire, _tool_call_to_wire


def text_config(response_format: dict[str, Any] | None) -> dict[str, Any]:
    """The canonical (Chat Completions) ``response_format`` as ``text``."""
    if response_format is None or response_format.get("type") == "text":
        return {"format": {"type": "text"}}
    if response_format.get("type") == "json_schema":
        schema = response_format.get("json_schema") or {}
        return {"format": {"type": "json_schema", **schema}}
    return {"format": {"type": str(response_format.get("type"))}}


def tool_to_wire(tool: chat.Tool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "function",
        "name": tool.name,
        "parameters": tool.input_schema,
        "strict": None,
    }
    if tool.description is not None:
        out["description"] = tool.description
    return out


def tool_choice_to_wire(choice: chat.ToolChoice) -> str | dict[str, Any]:
    if choice.type == "tool":
        return {"type": "function", "name": choice.name}
    return {"auto": "auto", "none": "none", "any": "required"}[choice.type]


def request_to_responses(
    request: chat.ChatRequest, *, upstream_model: str, reasoning_effort: bool = False
) -> dict[str, Any]:
    """The body for an upstream's ``/responses``. Stop sequences and
    ``top_k`` have no place in it: such a request raises TranslationError
    (the backend then sends it through chat completions instead)."""
    if request.stop_sequences:
        raise TranslationError("the Responses API has no stop sequences", "stop_sequences")
    items: list[dict[str, Any]] = []
    for i, message in enumerate(request.messages):
        items.extend(_message_items(message, f"messages[{i}]"))
    body: dict[str, Any] = {
        "model": upstream_model,
        "input": items,
        "max_output_tokens": request.max_tokens,
        "store": False,
    }
    system = request.system_text()
    if system:
        body["instructions"] = system
    for key in ("temperature", "top_p"):
        value = getattr(request, key)
        if value is not None:
            body[key] = value
    if request.response_format is not None:
        body["text"] = text_config(request.response_format)
    if request.tools:
        body["tools"] = [tool_to_wire(tool) for tool in request.tools]
    if request.tool_choice is not None:
        body["tool_choice"] = tool_choice_to_wire(request.tool_choice)
        if request.tool_choice.disable_parallel_tool_use:
            body["parallel_tool_calls"] = False
    thinking = request.thinking
    if reasoning_effort and thinking is not None and thinking.type == "enabled":
        body["reasoning"] = {"effort": effort_for_budget(thinking.budget_tokens)}
    return body


def _message_items(message: chat.Message, param: str) -> list[dict[str, Any]]:
    if isinstance(message.content, str):
        part = "input_text" if message.role == "user" else "output_text"
        return [{"role": message.role, "content": [{"type": part, "text": message.content}]}]
    items: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []

    def flush() -> None:
        if parts:
            items.append({"role": message.role, "content": list(parts)})
            parts.clear()

    for j, block in enumerate(message.content):
        if isinstance(block, chat.TextBlock):
            kind = "input_text" if message.role == "user" else "output_text"
            parts.append({"type": kind, "text": block.text})
        elif isinstance(block, chat.ImageBlock) and message.role == "user":
            parts.append(
                {"type": "input_image", "image_url": _image_to_wire(block)["image_url"]["url"]}
            )
        elif isinstance(block, chat.DocumentBlock) and message.role == "user":
            parts.append(_document_to_wire(block))
        elif isinstance(block, chat.ToolUseBlock):
            flush()
            call = _tool_call_to_wire(block)
            items.append(
                {
                    "type": "function_call",
                    "call_id": block.id,
                    "name": block.name,
                    "arguments": call["function"]["arguments"],
                }
            )
        elif isinstance(block, chat.ToolResultBlock):
            flush()
            items.append(
                {
                    "type": "function_call_output",
                    "call_id": block.tool_use_id,
                    "output": _tool_output(block),
                }
            )
        elif isinstance(block, chat.ThinkingBlock | chat.RedactedThinkingBlock):
            continue  # another model's reasoning is not sent back (see inbound)
        else:
            raise TranslationError(f"{block.type} blocks cannot be sent", f"{param}.content[{j}]")
    flush()
    return items


def _document_to_wire(block: chat.DocumentBlock) -> dict[str, Any]:
    """A text document as input text; a PDF as an ``input_file`` (only
    upstreams that read PDFs get one: the capability check)."""
    source = block.source
    if not source.is_pdf:
        return {"type": "input_text", "text": block.prompt_text()}
    part: dict[str, Any] = {"type": "input_file", "filename": block.title or "document.pdf"}
    if source.type == "url":
        part["file_url"] = source.url
    else:
        part["file_data"] = f"data:application/pdf;base64,{source.data or ''}"
    return part


def _tool_output(block: chat.ToolResultBlock) -> str:
    if block.content is None or isinstance(block.content, str):
        text = block.content or ""
    else:
        text = "\n\n".join(part.text for part in block.content if isinstance(part, chat.TextBlock))
    return f"Error: {text}" if block.is_error else text
