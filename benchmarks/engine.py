"""Benchmark the embedded llama.cpp engine against the plain way of running it.

    .venv/bin/python benchmarks/engine.py

Prints, from one run:

1. Throughput: the same 64 short chat prompts, greedy, max_tokens 128,
   (a) through a plain loop over ``llama_cpp.Llama.create_chat_completion``
   (what a user would write) and (b) through batchgate's engine; output
   tokens/s of each and the ratio b/a.
2. Shared prefix: 64 requests sharing a ~500-token system prompt,
   max_tokens 32, through the engine with prefix reuse on and off; the ratio.

The peer runs in the same process on the same machine, so the ratios hold even
where the absolute figures do not. Both sides use every core. Keep the machine
otherwise idle while it runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import Any

from batchgate import chat, config
from batchgate.backends import llama_cpp as engine_backend

TOPICS = [
    "the moon",
    "volcanoes",
    "honeybees",
    "the Roman empire",
    "coffee",
    "jazz",
    "glaciers",
    "octopuses",
    "the printing press",
    "bicycles",
    "chess",
    "rainforests",
    "the internet",
    "lighthouses",
    "penguins",
    "tea",
    "the Eiffel Tower",
    "earthquakes",
    "whales",
    "origami",
    "the Sahara",
    "electric cars",
    "bread",
    "the violin",
    "comets",
    "the Amazon river",
    "sushi",
    "windmills",
    "butterflies",
    "the pyramids",
    "recycling",
    "photosynthesis",
]
ASKS = ["Tell me three facts about {}.", "Write a short poem about {}."]
PROMPTS = [ask.format(topic) for ask in ASKS for topic in TOPICS]  # 64 prompts

# ~500 tokens of a plausible house style guide: the shared system prompt.
SYSTEM = " ".join(
    f"Rule {i}: when the customer asks about topic {i}, answer politely, cite the relevant "
    f"section {i} of the handbook, keep the answer under {i + 40} words, avoid jargon, and "
    "offer a follow-up question."
    for i in range(1, 12)
)


def _threads() -> int:
    return os.cpu_count() or 1


def plain_loop(prompts: list[str], max_tokens: int) -> tuple[int, float]:
    """(a): one request after another through the high-level API."""
    import llama_cpp

    llm = llama_cpp.Llama(
        model_path=str(config.default_model_path()),
        n_ctx=2048,
        n_threads=_threads(),
        n_threads_batch=_threads(),
        verbose=False,
    )
    tokens = 0
    start = time.perf_counter()
    for prompt in prompts:
        result: Any = llm.create_chat_completion(
            messages=[{"role": "user", "content": prompt}], temperature=0.0, max_tokens=max_tokens
        )
        tokens += result["usage"]["completion_tokens"]
    elapsed = time.perf_counter() - start
    llm.close()
    return tokens, elapsed


async def engine_run(
    requests: list[chat.ChatRequest], options: dict[str, Any]
) -> tuple[int, float, list[chat.ChatResponse], Any]:
    """(b): every request submitted at once, as the batch worker does."""
    backend = engine_backend.create(
        config.ModelConfig(name="bench", backend="llama_cpp", **options)
    )
    # Load the model outside the timed part (the plain loop loads before timing too).
    warm = chat.ChatRequest(
        model="bench", max_tokens=1, messages=[chat.Message(role="user", content="hi")]
    )
    await backend.complete(warm)
    start = time.perf_counter()
    responses = await asyncio.gather(*(backend.complete(r) for r in requests))
    elapsed = time.perf_counter() - start
    await backend.aclose()
    stats = backend.stats  # type: ignore[attr-defined]
    return sum(r.usage.output_tokens for r in responses), elapsed, list(responses), stats


def _requests(prompts: list[str], max_tokens: int, system: str | None) -> list[chat.ChatRequest]:
    return [
        chat.ChatRequest(
            model="bench",
            max_tokens=max_tokens,
            temperature=0.0,
            system=system,
            messages=[chat.Message(role="user", content=p)],
        )
        for p in prompts
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=["all", "throughput", "prefix"], default="all")
    parser.add_argument("--skip-plain", action="store_true", help="engine side only (tuning)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved throughput rounds")
    parser.add_argument(
        "--opt",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="engine option override, e.g. --opt n_parallel=8 --opt kv_unified=true",
    )
    args = parser.parse_args()
    options: dict[str, Any] = {}
    for item in args.opt:
        key, _, value = item.partition("=")
        options[key] = value == "true" if value in ("true", "false") else int(value)
    print(f"cores: {_threads()}  engine options: {options or 'defaults'}", flush=True)

    if args.part in ("all", "throughput"):
        print(
            f"\n1. Throughput: 64 short chat prompts, greedy, max_tokens 128 "
            f"({args.rounds} interleaved rounds; the machine is shared, so the best run of "
            "each side is its capability)",
            flush=True,
        )
        plain_rates: list[float] = []
        engine_rates: list[float] = []
        for round_number in range(1, args.rounds + 1):
            if not args.skip_plain:
                n, secs = plain_loop(PROMPTS, 128)
                plain_rates.append(n / secs)
                print(
                    f"  round {round_number} (a) plain Llama.create_chat_completion loop: "
                    f"{n} tokens in {secs:6.1f} s = {n / secs:6.1f} tok/s",
                    flush=True,
                )
            n, secs, _, _ = asyncio.run(engine_run(_requests(PROMPTS, 128, None), options))
            engine_rates.append(n / secs)
            print(
                f"  round {round_number} (b) batchgate engine:                        "
                f"{n} tokens in {secs:6.1f} s = {n / secs:6.1f} tok/s",
                flush=True,
            )
        if plain_rates:
            ratios = [b / a for a, b in zip(plain_rates, engine_rates, strict=True)]
            print(
                f"  best (a) {max(plain_rates):.1f} tok/s, best (b) {max(engine_rates):.1f} tok/s: "
                f"ratio b/a = {max(engine_rates) / max(plain_rates):.2f}x "
                f"(per round: {', '.join(f'{r:.2f}x' for r in ratios)}; "
                f"must be >= 1.5x, goal 1.75x)"
            )

    if args.part in ("all", "prefix"):
        requests = _requests(PROMPTS, 32, SYSTEM)
        print("\n2. Shared prefix: 64 requests, shared system prompt, max_tokens 32", flush=True)
        n_on, secs_on, on, stats_on = asyncio.run(engine_run(requests, options))
        print(f"  prefix reuse on:  {secs_on:6.1f} s ({n_on} output tokens)", flush=True)
        n_off, secs_off, off, _ = asyncio.run(
            engine_run(requests, {**options, "prefix_cache": False})
        )
        print(f"  prefix reuse off: {secs_off:6.1f} s ({n_off} output tokens)", flush=True)
        same = sum(a.text() == b.text() for a, b in zip(on, off, strict=True))
        print(
            f"  prompt tokens per request: {on[0].usage.input_tokens}; "
            f"identical greedy replies on vs off: {same}/{len(on)}"
        )
        print(
            f"  with reuse on: {stats_on.prefix_hits} prefix hits, {stats_on.reused_tokens} "
            f"prompt tokens copied, {stats_on.prefilled_tokens} computed"
        )
        print(f"  speed-up on/off = {secs_off / secs_on:.2f}x  (must be >= 3x)")


if __name__ == "__main__":
    sys.exit(main())
