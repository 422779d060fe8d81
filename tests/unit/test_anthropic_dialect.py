"""The Anthropic dialect: parsing create bodies and rendering message_batch objects."""

from __future__ import annotations

import datetime

import orjson
import pytest

from batchgate.canonical import chat
from batchgate.dialects import anthropic
from batchgate.domain import errors
from batchgate.domain.batch import Batch
from batchgate.domain.counts import StateTally
from batchgate.domain.states import BatchStatus, Dialect, RequestState

RESULTS_URL = "http://host/v1/messages/batches/msgbatch_1/results"


def body(*requests: object) -> bytes:
    return orjson.dumps({"requests": list(requests)})


def ok(custom_id: str = "a", **params: object) -> dict[str, object]:
    base = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    return {"custom_id": custom_id, "params": {**base, **params}}


def error_of(raw: bytes) -> errors.InvalidRequest:
    with pytest.raises(errors.InvalidRequest) as info:
        anthropic.parse_create(raw)
    return info.value


def batch(
    status: BatchStatus = BatchStatus.IN_PROGRESS,
    by_state: dict[RequestState, int] | None = None,
    total: int = 6,
    **times: float,
) -> Batch:
    return Batch(
        id="msgbatch_1",
        owner="k",
        dialect=Dialect.ANTHROPIC,
        endpoint="/v1/messages",
        input_file_id=None,
        completion_window="24h",
        metadata=None,
        status=status,
        errors=None,
        total=total,
        created_at=1_700_000_000.25,
        expires_at=1_700_086_400.25,
        tally=StateTally(by_state=by_state or {RequestState.QUEUED: total}),
        **times,
    )


# -- parsing ------------------------------------------------------------------


def test_full_messages_params_become_a_canonical_request() -> None:
    tool = {"name": "get_weather", "input_schema": {"type": "object", "properties": {}}}
    params = anthropic.parse_create(
        body(
            ok(
                system=[
                    {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}
                ],
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "what is this?"},
                            {
                                "type": "image",
                                "source": {
                                    "type": "base64",
                                    "media_type": "image/png",
                                    "data": "AA==",
                                },
                            },
                        ],
                    },
                    {
                        "role": "assistant",
                        "content": [
                            {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                            {
                                "type": "tool_use",
                                "id": "toolu_1",
                                "name": "get_weather",
                                "input": {},
                            },
                        ],
                    },
                    {
                        "role": "user",
                        "content": [
                            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}
                        ],
                    },
                ],
                tools=[tool],
                tool_choice={"type": "tool", "name": "get_weather"},
                thinking={"type": "enabled", "budget_tokens": 1024},
                stop_sequences=["END"],
                metadata={"user_id": "u1"},
                temperature=0.5,
                top_k=5,
                top_p=0.9,
            )
        )
    )[0].params
    assert isinstance(params.messages[2].blocks()[0], chat.ToolResultBlock)
    assert params.tool_choice == chat.ToolChoice(type="tool", name="get_weather")
    assert params.thinking == chat.Thinking(type="enabled", budget_tokens=1024)
    assert params.system_text() == "Be brief."


@pytest.mark.parametrize("custom_id", ["a", "A-z_09", "x" * 64])
def test_custom_ids_of_letters_digits_dash_underscore_up_to_64_are_accepted(
    custom_id: str,
) -> None:
    assert anthropic.parse_create(body(ok(custom_id)))[0].custom_id == custom_id


@pytest.mark.parametrize("custom_id", ["", "x" * 65, "has space", "dot.ted", "tail\n", "é"])
def test_custom_ids_outside_anthropics_pattern_are_rejected(custom_id: str) -> None:
    err = error_of(body(ok("fine"), ok(custom_id)))
    assert err.param == "requests[1].custom_id"
    assert err.message.startswith("requests[1].custom_id:")


def test_duplicate_custom_id_names_both_indexes() -> None:
    err = error_of(body(ok("a"), ok("b"), ok("a")))
    assert err.param == "requests[2].custom_id"
    assert "requests[0]" in err.message


def test_missing_max_tokens_is_named() -> None:
    params = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    err = error_of(body({"custom_id": "a", "params": params}))
    assert err.param == "requests[0].params.max_tokens"


def test_unknown_content_block_type_is_named() -> None:
    err = error_of(
        body(ok("a", messages=[{"role": "user", "content": [{"type": "video", "url": "x"}]}]))
    )
    assert err.param == "requests[0].params.messages[0].content[0]"
    assert "'video'" in err.message


def test_unknown_top_level_field_is_rejected() -> None:
    raw = orjson.dumps({"requests": [ok("a")], "completion_window": "24h"})
    assert error_of(raw).param == "completion_window"


@pytest.mark.parametrize("raw", [b"{}", b'{"requests": []}'])
def test_missing_or_empty_requests_is_rejected(raw: bytes) -> None:
    assert error_of(raw).param == "requests"


# -- rendering ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (BatchStatus.IN_PROGRESS, "in_progress"),
        (BatchStatus.CANCELLING, "canceling"),
        (BatchStatus.COMPLETED, "ended"),
        (BatchStatus.CANCELLED, "ended"),
        (BatchStatus.EXPIRED, "ended"),
        (BatchStatus.FAILED, "ended"),
    ],
)
def test_every_batch_status_maps_to_a_processing_status(status: BatchStatus, expected: str) -> None:
    assert anthropic.processing_status(status) == expected


def test_processing_counts_queued_and_running_and_all_counts_sum_to_total() -> None:
    by_state = {
        RequestState.QUEUED: 1,
        RequestState.RUNNING: 2,
        RequestState.SUCCEEDED: 3,
        RequestState.ERRORED: 4,
        RequestState.CANCELED: 5,
        RequestState.EXPIRED: 6,
    }
    counts = anthropic.request_counts(batch(by_state=by_state, total=21))
    assert counts == {
        "processing": 3,
        "succeeded": 3,
        "errored": 4,
        "canceled": 5,
        "expired": 6,
    }
    assert sum(counts.values()) == 21


def test_results_url_is_hidden_until_the_batch_has_ended() -> None:
    running = anthropic.render_batch(batch(BatchStatus.CANCELLING), results_url=RESULTS_URL)
    ended = anthropic.render_batch(
        batch(BatchStatus.CANCELLED, cancelled_at=1_700_000_100.0), results_url=RESULTS_URL
    )
    assert running["results_url"] is None
    assert ended["results_url"] == RESULTS_URL


def test_timestamps_are_rfc3339_utc_and_null_when_unset() -> None:
    obj = anthropic.render_batch(
        batch(BatchStatus.CANCELLING, cancelling_at=1_700_000_050.5), results_url=RESULTS_URL
    )
    assert obj["created_at"] == "2023-11-14T22:13:20.250000Z"
    created = datetime.datetime.fromisoformat(obj["created_at"])
    assert created.timestamp() == 1_700_000_000.25
    assert obj["cancel_initiated_at"] == "2023-11-14T22:14:10.500000Z"
    assert obj["ended_at"] is None and obj["archived_at"] is None


def test_ended_at_is_when_the_batch_ended_whatever_the_reason() -> None:
    obj = anthropic.render_batch(
        batch(BatchStatus.EXPIRED, expired_at=1_700_086_400.25), results_url=RESULTS_URL
    )
    assert obj["ended_at"] == obj["expires_at"] == "2023-11-15T22:13:20.250000Z"


def test_list_page_names_its_first_and_last_ids() -> None:
    page = anthropic.render_page([{"id": "b3"}, {"id": "b2"}], has_more=True)
    assert (page["first_id"], page["last_id"], page["has_more"]) == ("b3", "b2", True)
    assert anthropic.render_page([], has_more=False)["first_id"] is None
