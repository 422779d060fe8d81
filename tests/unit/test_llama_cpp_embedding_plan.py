"""The embeddings engine's pure decisions: packing, pooling choice, vector finishing."""

from __future__ import annotations

import math

import pytest

from batchgate.backends.llama_cpp import embedding_plan, options
from batchgate.backends.llama_cpp.embedding_plan import LlamaPooling


def test_take_packs_inputs_up_to_the_token_budget() -> None:
    assert embedding_plan.take([10, 10, 10, 10], budget=30, max_inputs=64) == 3


def test_take_stops_at_the_first_input_that_does_not_fit() -> None:
    # In queue order: a later short input does not jump a longer one.
    assert embedding_plan.take([20, 15, 5], budget=30, max_inputs=64) == 1


def test_take_caps_the_number_of_sequences() -> None:
    assert embedding_plan.take([1] * 100, budget=512, max_inputs=64) == 64


def test_take_sends_an_input_longer_than_the_budget_alone() -> None:
    assert embedding_plan.take([900, 5], budget=512, max_inputs=64) == 1


def test_take_of_an_empty_queue_is_nothing() -> None:
    assert embedding_plan.take([], budget=512, max_inputs=64) == 0


def test_pooling_follows_what_the_gguf_declares() -> None:
    assert embedding_plan.pooling_type(options.Pooling.MODEL, 2) is LlamaPooling.CLS


@pytest.mark.parametrize("declared", [None, 0])
def test_pooling_falls_back_to_mean_when_the_gguf_declares_none(declared: int | None) -> None:
    assert embedding_plan.pooling_type(options.Pooling.MODEL, declared) is LlamaPooling.MEAN


def test_configured_pooling_overrides_the_gguf() -> None:
    assert embedding_plan.pooling_type(options.Pooling.LAST, 2) is LlamaPooling.LAST


def test_a_reranker_gguf_is_refused_unless_pooling_is_chosen() -> None:
    with pytest.raises(ValueError, match="rank pooling"):
        embedding_plan.pooling_type(options.Pooling.MODEL, 4)


def test_finish_normalises_to_unit_length() -> None:
    assert embedding_plan.finish([3.0, 4.0], None) == pytest.approx([0.6, 0.8])


def test_finish_shortens_before_normalising() -> None:
    vector = embedding_plan.finish([3.0, 4.0, 12.0], 2)
    assert vector == pytest.approx([0.6, 0.8])
    assert math.hypot(*vector) == pytest.approx(1.0)


def test_finish_refuses_a_vector_with_nan() -> None:
    with pytest.raises(ValueError, match="non-finite"):
        embedding_plan.finish([1.0, math.nan], None)


def test_pooling_option_from_toml_is_accepted() -> None:
    assert options.parse("m", {"pooling": "cls"}).pooling is options.Pooling.CLS


def test_unknown_pooling_option_is_rejected() -> None:
    with pytest.raises(ValueError, match="invalid llama_cpp options"):
        options.parse("m", {"pooling": "max"})
