"""Parsing the native create body: strict, with the path of what is wrong."""

from __future__ import annotations

import orjson
import pytest

from batchgate.dialects import native
from batchgate.domain import errors


def body(*requests: object) -> bytes:
    return orjson.dumps({"requests": list(requests)})


def ok(custom_id: str = "a", **params: object) -> dict[str, object]:
    base = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    return {"custom_id": custom_id, "params": {**base, **params}}


def error_of(raw: bytes) -> errors.InvalidRequest:
    with pytest.raises(errors.InvalidRequest) as info:
        native.parse_create(raw)
    return info.value


def test_every_param_of_the_upstream_example_is_accepted() -> None:
    parsed = native.parse_create(
        body(
            ok(
                metadata={"user_id": "u1"},
                stop_sequences=["\n\n"],
                system="Be brief.",
                temperature=1,
                tool_choice=None,
                tools=[],
                top_k=1,
                top_p=1,
                thinking={"budget_tokens": 1024, "type": "enabled"},
            )
        )
    )
    params = parsed.requests[0].params
    assert params.temperature == 1.0 and params.top_k == 1 and params.tools == []


def test_not_json_is_rejected() -> None:
    assert "not valid JSON" in error_of(b"{nope").message


@pytest.mark.parametrize("raw", [b"{}", b'{"requests": []}'])
def test_missing_or_empty_requests_is_rejected(raw: bytes) -> None:
    assert error_of(raw).param == "requests"


def test_wrong_type_names_the_path() -> None:
    err = error_of(body(ok("a"), ok("b"), ok("c", max_tokens="ten")))
    assert err.param == "requests[2].params.max_tokens"
    assert "requests[2].params.max_tokens" in err.message


@pytest.mark.parametrize("missing", ["model", "max_tokens", "messages"])
def test_missing_required_param_names_it(missing: str) -> None:
    request = ok()
    del request["params"][missing]  # type: ignore[attr-defined]
    assert error_of(body(request)).param == f"requests[0].params.{missing}"


def test_missing_custom_id_or_params_names_it() -> None:
    assert error_of(body({"params": ok()["params"]})).param == "requests[0].custom_id"
    assert error_of(body({"custom_id": "x"})).param == "requests[0].params"


def test_duplicate_custom_id_names_it_and_its_index() -> None:
    err = error_of(body(ok("a"), ok("b"), ok("a")))
    assert "'a'" in err.message and "requests[2]" in err.message
    assert err.param == "requests[2].custom_id"


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"thinking": {"type": "enabled"}}, "requests[0].params.thinking"),
        ({"tool_choice": {"type": "tool"}}, "requests[0].params.tool_choice"),
        ({"stream": True}, "requests[0].params.stream"),
        # Internal to OpenAI-dialect lines, not Messages parameters.
        ({"origin": "completions"}, "requests[0].params.origin"),
        ({"raw_prompt": True}, "requests[0].params.raw_prompt"),
        ({"settings_echoed": True}, "requests[0].params.settings_echoed"),
        ({"max_tokens_defaulted": True}, "requests[0].params.max_tokens_defaulted"),
        ({"user": "u1"}, "requests[0].params.user"),
    ],
)
def test_params_anthropic_would_refuse_are_refused_at_submit(
    extra: dict[str, object], param: str
) -> None:
    assert error_of(body(ok(**extra))).param == param


def test_a_reply_passed_back_as_history_is_accepted() -> None:
    reply = {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "hi", "citations": None},
            {
                "type": "tool_use",
                "id": "t1",
                "name": "f",
                "input": {},
                "caller": {"type": "direct"},
            },
        ],
    }
    request = ok(
        messages=[
            {"role": "user", "content": "q"},
            reply,
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}],
            },
        ]
    )
    assert len(native.parse_create(body(request)).requests[0].params.messages) == 3


def test_temperature_above_the_messages_range_is_refused() -> None:
    err = error_of(body(ok("a"), ok("b", temperature=1.5)))
    assert err.param == "requests[1].params.temperature"
    assert native.parse_create(body(ok("a", temperature=1))).requests[0].params.temperature == 1
