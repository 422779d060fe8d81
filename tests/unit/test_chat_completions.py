"""Translation between Chat Completions bodies and the canonical chat types."""

from __future__ import annotations

from typing import Any

import pytest

from batchgate.canonical import chat
from batchgate.wire.openai import chat_completions as cc


def body(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 16,
    }
    base.update(overrides)
    return base


def translation_error(raw: Any, **kwargs: Any) -> cc.TranslationError:
    with pytest.raises(cc.TranslationError) as info:
        cc.request_from_chat_completions(raw, **kwargs)
    return info.value


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
TOOL_CONVERSATION = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": "weather in Paris and Rome?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
            },
            {
                "id": "call_2",
                "type": "function",
                "function": {"name": "weather", "arguments": '{"city": "Rome"}'},
            },
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    {"role": "tool", "tool_call_id": "call_2", "content": "rain"},
    {"role": "user", "content": "thanks"},
]


# --- request_from_chat_completions: messages


def test_system_and_developer_messages_become_the_system_prompt() -> None:
    req = cc.request_from_chat_completions(
        body(
            messages=[
                {"role": "system", "content": "one"},
                {"role": "developer", "content": [{"type": "text", "text": "two"}]},
                {"role": "user", "content": "hi"},
            ]
        )
    )
    assert req.system_text() == "one\n\ntwo"
    assert [m.role for m in req.messages] == ["user"]


def test_assistant_tool_calls_become_tool_use_blocks_with_parsed_input() -> None:
    req = cc.request_from_chat_completions(body(messages=TOOL_CONVERSATION, tools=TOOLS))
    assistant = req.messages[1].blocks()
    assert assistant == [
        chat.ToolUseBlock(id="call_1", name="weather", input={"city": "Paris"}),
        chat.ToolUseBlock(id="call_2", name="weather", input={"city": "Rome"}),
    ]


def test_consecutive_tool_messages_and_following_user_text_form_one_user_turn() -> None:
    req = cc.request_from_chat_completions(body(messages=TOOL_CONVERSATION, tools=TOOLS))
    assert [m.role for m in req.messages] == ["user", "assistant", "user"]
    assert req.messages[2].blocks() == [
        chat.ToolResultBlock(tool_use_id="call_1", content="sunny"),
        chat.ToolResultBlock(tool_use_id="call_2", content="rain"),
        chat.TextBlock(text="thanks"),
    ]


def test_consecutive_user_messages_merge_into_one_turn() -> None:
    req = cc.request_from_chat_completions(
        body(messages=[{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])
    )
    assert len(req.messages) == 1
    assert req.messages[0].blocks() == [chat.TextBlock(text="a"), chat.TextBlock(text="b")]


def test_empty_assistant_message_is_dropped_so_turns_stay_valid() -> None:
    req = cc.request_from_chat_completions(
        body(
            messages=[
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": ""},
                {"role": "user", "content": "b"},
            ]
        )
    )
    assert [m.role for m in req.messages] == ["user"]


def test_image_parts_become_image_blocks_for_data_and_http_urls() -> None:
    req = cc.request_from_chat_completions(
        body(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "compare"},
                        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,QUJD"}},
                        {
                            "type": "image_url",
                            "image_url": {"url": "https://x.test/a.png", "detail": "low"},
                        },
                    ],
                }
            ]
        )
    )
    blocks = req.messages[0].blocks()
    assert blocks[1] == chat.ImageBlock(
        source=chat.ImageSource(type="base64", media_type="image/jpeg", data="QUJD")
    )
    assert blocks[2] == chat.ImageBlock(
        source=chat.ImageSource(type="url", url="https://x.test/a.png")
    )


# --- request_from_chat_completions: parameters


def test_max_tokens_defaults_when_absent() -> None:
    raw = body()
    del raw["max_tokens"]
    assert cc.request_from_chat_completions(raw).max_tokens == cc.DEFAULT_MAX_TOKENS


def test_max_completion_tokens_wins_over_max_tokens() -> None:
    req = cc.request_from_chat_completions(body(max_tokens=10, max_completion_tokens=20))
    assert req.max_tokens == 20


def test_stop_string_becomes_a_one_item_stop_sequence_list() -> None:
    assert cc.request_from_chat_completions(body(stop="END")).stop_sequences == ["END"]


def test_sampling_params_and_seed_carry_over() -> None:
    req = cc.request_from_chat_completions(body(temperature=1, top_p=0.5, top_k=40, seed=7))
    assert (req.temperature, req.top_p, req.top_k, req.seed) == (1.0, 0.5, 40, 7)


def test_tools_become_canonical_tools_with_parameters_as_input_schema() -> None:
    req = cc.request_from_chat_completions(body(tools=TOOLS))
    assert req.tools == [
        chat.Tool(
            name="weather",
            description="Weather for a city",
            input_schema=TOOLS[0]["function"]["parameters"],
        )
    ]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", chat.ToolChoice(type="auto")),
        ("none", chat.ToolChoice(type="none")),
        ("required", chat.ToolChoice(type="any")),
        (
            {"type": "function", "function": {"name": "weather"}},
            chat.ToolChoice(type="tool", name="weather"),
        ),
    ],
)
def test_tool_choice_maps_to_messages_tool_choice(choice: Any, expected: chat.ToolChoice) -> None:
    req = cc.request_from_chat_completions(body(tools=TOOLS, tool_choice=choice))
    assert req.tool_choice == expected


def test_parallel_tool_calls_false_disables_parallel_tool_use() -> None:
    req = cc.request_from_chat_completions(body(tools=TOOLS, parallel_tool_calls=False))
    assert req.tool_choice == chat.ToolChoice(type="auto", disable_parallel_tool_use=True)


def test_reasoning_effort_enables_thinking_with_a_budget_below_max_tokens() -> None:
    req = cc.request_from_chat_completions(body(max_tokens=5000, reasoning_effort="high"))
    assert req.thinking == chat.Thinking(type="enabled", budget_tokens=4999)


def test_reasoning_effort_low_uses_its_table_budget() -> None:
    req = cc.request_from_chat_completions(body(max_tokens=10000, reasoning_effort="low"))
    assert req.thinking == chat.Thinking(type="enabled", budget_tokens=2048)


def test_response_format_passes_through() -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    assert cc.request_from_chat_completions(body(response_format=fmt)).response_format == fmt


def test_metadata_user_store_are_dropped() -> None:
    req = cc.request_from_chat_completions(
        body(metadata={"k": "v"}, user="u1", store=False, stream=False)
    )
    assert req.metadata is None


def test_neutral_penalties_are_accepted() -> None:
    req = cc.request_from_chat_completions(body(presence_penalty=0, frequency_penalty=0.0))
    assert req.model == "m"


# --- request_from_chat_completions: errors name the offending field


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        (body(foo=1), "body.foo"),
        (body(stream=True), "body.stream"),
        (body(n=2), "body.n"),
        (body(max_tokens="5"), "body.max_tokens"),
        (body(max_tokens=0), "body.max_tokens"),
        (body(temperature="hot"), "body.temperature"),
        (body(presence_penalty=0.5), "body.presence_penalty"),
        (body(stop=["a", 3]), "body.stop[1]"),
        (body(messages=[]), "body.messages"),
        (body(messages=[{"role": "robot", "content": "x"}]), "body.messages[0].role"),
        (body(messages=[{"role": "user", "content": 5}]), "body.messages[0].content"),
        (
            body(messages=[{"role": "user", "content": [{"type": "input_audio"}]}]),
            "body.messages[0].content[0].type",
        ),
        (
            body(messages=[{"role": "user", "content": "a"}, {"role": "user", "content": None}]),
            "body.messages[1].content",
        ),
        (body(messages=[{"role": "system", "content": "only"}]), "body.messages"),
        (body(tools=[{"type": "web_search"}]), "body.tools[0].type"),
        (body(tool_choice="sometimes"), "body.tool_choice"),
        (body(reasoning_effort="extreme"), "body.reasoning_effort"),
        (body(model=None), "body.model"),
    ],
)
def test_invalid_bodies_raise_with_the_param_path(raw: dict[str, Any], param: str) -> None:
    assert translation_error(raw).param == param


def test_param_path_is_prefixed_with_the_given_path() -> None:
    assert translation_error(body(n=3), path="line[4].body").param == "line[4].body.n"


def test_invalid_tool_call_arguments_name_the_arguments_field() -> None:
    messages = [dict(m) for m in TOOL_CONVERSATION[:3]]
    messages[2] = {
        "role": "assistant",
        "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "weather", "arguments": "{"}}
        ],
    }
    error = translation_error(body(messages=messages))
    assert error.param == "body.messages[2].tool_calls[0].function.arguments"


def test_tool_message_without_a_preceding_tool_call_is_rejected() -> None:
    raw = body(messages=[{"role": "tool", "tool_call_id": "x", "content": "r"}])
    assert translation_error(raw).param == "body.messages[0]"


def test_out_of_range_temperature_is_rejected_by_canonical_validation() -> None:
    assert translation_error(body(temperature=3)).param == "body.temperature"


# --- request_to_chat_completions


def test_tool_use_round_trip_back_to_chat_completions_messages() -> None:
    req = cc.request_from_chat_completions(body(messages=TOOL_CONVERSATION, tools=TOOLS))
    wire = cc.request_to_chat_completions(req, upstream_model="up")
    assert wire["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city": "Rome"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": "rain"},
        {"role": "user", "content": "thanks"},
    ]
    assert wire["tools"] == TOOLS
    assert wire["model"] == "up"


def test_base64_image_becomes_a_data_url() -> None:
    req = chat.ChatRequest(
        model="m",
        max_tokens=5,
        messages=[
            chat.Message(
                role="user",
                content=[
                    chat.TextBlock(text="look"),
                    chat.ImageBlock(
                        source=chat.ImageSource(type="base64", media_type="image/png", data="QUJD")
                    ),
                ],
            )
        ],
    )
    wire = cc.request_to_chat_completions(req, upstream_model="m")
    assert wire["messages"][0]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64,QUJD"},
    }


def test_params_map_to_chat_completions_fields() -> None:
    req = chat.ChatRequest.model_validate(
        {
            "model": "m",
            "max_tokens": 9,
            "messages": [{"role": "user", "content": "x"}],
            "temperature": 0.2,
            "top_p": 0.9,
            "top_k": 5,
            "seed": 1,
            "stop_sequences": ["X"],
            "metadata": {"user_id": "u"},
            "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
            "response_format": {"type": "json_object"},
        }
    )
    wire = cc.request_to_chat_completions(req, upstream_model="m")
    assert {k: v for k, v in wire.items() if k not in ("model", "messages")} == {
        "max_tokens": 9,
        "temperature": 0.2,
        "top_p": 0.9,
        "top_k": 5,
        "seed": 1,
        "stop": ["X"],
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "response_format": {"type": "json_object"},
    }


def test_max_tokens_field_can_be_max_completion_tokens() -> None:
    req = cc.request_from_chat_completions(body())
    wire = cc.request_to_chat_completions(
        req, upstream_model="m", max_tokens_field="max_completion_tokens"
    )
    assert wire["max_completion_tokens"] == 16
    assert "max_tokens" not in wire


def test_thinking_is_dropped_unless_the_server_takes_reasoning_effort() -> None:
    req = cc.request_from_chat_completions(body(max_tokens=10000, reasoning_effort="low"))
    assert "reasoning_effort" not in cc.request_to_chat_completions(req, upstream_model="m")
    wire = cc.request_to_chat_completions(req, upstream_model="m", reasoning_effort=True)
    assert wire["reasoning_effort"] == "low"


def test_image_inside_a_tool_result_cannot_be_sent() -> None:
    image = chat.ImageBlock(source=chat.ImageSource(type="url", url="https://x.test/a.png"))
    req = chat.ChatRequest(
        model="m",
        max_tokens=5,
        messages=[
            chat.Message(role="user", content="q"),
            chat.Message(role="assistant", content=[chat.ToolUseBlock(id="t", name="f", input={})]),
            chat.Message(
                role="user", content=[chat.ToolResultBlock(tool_use_id="t", content=[image])]
            ),
        ],
    )
    with pytest.raises(cc.TranslationError) as info:
        cc.request_to_chat_completions(req, upstream_model="m")
    assert info.value.param == "messages[2].content[0]"


# --- response_from_chat_completion


def completion(message: dict[str, Any], finish: str = "stop", **choice: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "up",
        "choices": [{"index": 0, "message": message, "finish_reason": finish, **choice}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14},
    }


def test_text_reply_becomes_a_text_block_with_usage() -> None:
    resp = cc.response_from_chat_completion(completion({"role": "assistant", "content": "hi"}))
    assert resp.content == [chat.TextBlock(text="hi")]
    assert resp.stop_reason == "end_turn"
    assert (resp.usage.input_tokens, resp.usage.output_tokens) == (11, 3)


@pytest.mark.parametrize(
    ("finish", "stop_reason"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("content_filter", "refusal"),
    ],
)
def test_finish_reason_maps_to_stop_reason(finish: str, stop_reason: str) -> None:
    reply = completion({"role": "assistant", "content": "x"}, finish)
    assert cc.response_from_chat_completion(reply).stop_reason == stop_reason


def test_stop_reason_field_naming_a_request_stop_means_stop_sequence() -> None:
    req = cc.request_from_chat_completions(body(stop=["END", "DONE"]))
    reply = completion({"role": "assistant", "content": "x"}, "stop", stop_reason="DONE")
    resp = cc.response_from_chat_completion(reply, request=req)
    assert (resp.stop_reason, resp.stop_sequence) == ("stop_sequence", "DONE")


def test_content_ending_on_a_stop_sequence_is_cut_and_reported() -> None:
    req = cc.request_from_chat_completions(body(stop="END"))
    reply = completion({"role": "assistant", "content": "one two END"})
    resp = cc.response_from_chat_completion(reply, request=req)
    assert (resp.text(), resp.stop_reason, resp.stop_sequence) == (
        "one two ",
        "stop_sequence",
        "END",
    )


def test_plain_stop_with_stop_sequences_but_no_signal_is_end_turn() -> None:
    req = cc.request_from_chat_completions(body(stop="END"))
    reply = completion({"role": "assistant", "content": "done"})
    assert cc.response_from_chat_completion(reply, request=req).stop_reason == "end_turn"


def test_tool_calls_become_tool_use_blocks() -> None:
    reply = completion(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_9",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city":"Oslo"}'},
                }
            ],
        },
        "tool_calls",
    )
    resp = cc.response_from_chat_completion(reply)
    assert resp.content == [chat.ToolUseBlock(id="call_9", name="weather", input={"city": "Oslo"})]
    assert resp.stop_reason == "tool_use"


def test_invalid_tool_arguments_are_kept_verbatim_and_sent_back_unchanged() -> None:
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": '{"a": 1'}}
    reply = completion({"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls")
    resp = cc.response_from_chat_completion(reply)
    assert resp.content[0] == chat.ToolUseBlock(id="c", name="f", input={"_raw": '{"a": 1'})
    rendered = cc.response_to_chat_completion(resp, created=1)
    assert rendered["choices"][0]["message"]["tool_calls"][0] == call


def test_reasoning_content_becomes_a_leading_thinking_block() -> None:
    reply = completion({"role": "assistant", "content": "42", "reasoning_content": "hmm"})
    resp = cc.response_from_chat_completion(reply)
    assert resp.content == [chat.ThinkingBlock(thinking="hmm"), chat.TextBlock(text="42")]


def test_reply_without_choices_is_a_translation_error() -> None:
    with pytest.raises(cc.TranslationError) as info:
        cc.response_from_chat_completion({"id": "x", "choices": []})
    assert info.value.param == "response.choices"


# --- response_to_chat_completion


def test_chat_completion_object_has_the_openai_shape() -> None:
    resp = chat.ChatResponse(
        id="msg_1",
        model="m",
        content=[chat.ThinkingBlock(thinking="t"), chat.TextBlock(text="hello")],
        stop_reason="max_tokens",
        usage=chat.Usage(input_tokens=5, output_tokens=2, cache_read_input_tokens=3),
    )
    out = cc.response_to_chat_completion(resp, completion_id="chatcmpl-x", created=123)
    assert out == {
        "id": "chatcmpl-x",
        "object": "chat.completion",
        "created": 123,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "hello",
                    "refusal": None,
                    "annotations": [],
                },
                "finish_reason": "length",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": 8,
            "completion_tokens": 2,
            "total_tokens": 10,
            "prompt_tokens_details": {"cached_tokens": 3},
        },
        "system_fingerprint": None,
    }


def test_tool_use_reply_renders_tool_calls_with_null_content() -> None:
    resp = chat.ChatResponse(
        id="msg_1",
        model="m",
        content=[chat.ToolUseBlock(id="t1", name="f", input={"x": 1})],
        stop_reason="tool_use",
        usage=chat.Usage(),
    )
    choice = cc.response_to_chat_completion(resp, created=1)["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    assert choice["message"]["tool_calls"] == [
        {"id": "t1", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}
    ]


def test_openai_sdk_parses_the_rendered_completion() -> None:
    from openai.types.chat import ChatCompletion

    resp = cc.response_from_chat_completion(completion({"role": "assistant", "content": "hi"}))
    parsed = ChatCompletion.model_validate(cc.response_to_chat_completion(resp, created=1))
    assert parsed.choices[0].message.content == "hi"


@pytest.mark.parametrize(
    ("file", "param", "reason"),
    [
        ({"file_id": "file-1"}, "file.file_id", "send the PDF inline"),
        ({"file_data": "data:text/plain;base64,aGk="}, "file.file_data", "must be a PDF"),
        ({"file_data": "https://x/a.pdf"}, "file.file_data", "must be a PDF"),
    ],
)
def test_a_file_part_must_be_an_inline_pdf(file: dict[str, Any], param: str, reason: str) -> None:
    content = [{"type": "file", "file": file}, {"type": "text", "text": "q"}]
    error = translation_error(body(messages=[{"role": "user", "content": content}]))
    assert error.param == f"body.messages[0].content[0].{param}" and reason in error.message


def test_a_text_document_goes_out_as_text_and_a_pdf_by_url_is_refused() -> None:
    text = {"type": "document", "source": {"type": "content", "content": "hello"}}
    request = chat.ChatRequest.model_validate(body(messages=[{"role": "user", "content": [text]}]))
    sent = cc.request_to_chat_completions(request, upstream_model="u")
    assert sent["messages"] == [
        {
            "role": "user",
            "content": "<document>\n<document_content>\nhello\n</document_content>\n</document>",
        }
    ]
    pdf = {"type": "document", "source": {"type": "url", "url": "https://x/a.pdf"}}
    request = chat.ChatRequest.model_validate(body(messages=[{"role": "user", "content": [pdf]}]))
    with pytest.raises(cc.TranslationError, match="send it inline"):
        cc.request_to_chat_completions(request, upstream_model="u")
