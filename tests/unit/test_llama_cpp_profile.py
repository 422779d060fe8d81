"""How many graph computes llama.cpp makes of a batch (profile.ubatch_count),
as llama-batch.cpp's split_equal cuts it for one KV stream per sequence."""

from __future__ import annotations

from batchgate.backends.llama_cpp import profile


def test_consecutive_one_token_sequences_are_one_compute() -> None:
    runs = [(seq, 1) for seq in range(16)]
    assert profile.ubatch_count(runs, 512, unified=False) == 1


def test_a_gap_in_the_sequence_ids_costs_a_compute() -> None:
    assert profile.ubatch_count([(0, 1), (1, 1), (3, 1)], 512, unified=False) == 2


def test_a_prompt_chunk_in_id_order_shares_the_first_compute() -> None:
    in_order = [(0, 1), (1, 40), (2, 1)]
    assert profile.ubatch_count(in_order, 512, unified=False) == 2
    out_of_order = [(0, 1), (2, 1), (1, 40)]
    assert profile.ubatch_count(out_of_order, 512, unified=False) == 3


def test_a_unified_cache_is_cut_by_size_only() -> None:
    assert profile.ubatch_count([(0, 1), (5, 300), (9, 300)], 512, unified=True) == 2
