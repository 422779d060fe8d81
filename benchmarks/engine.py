"""Benchmark the embedded llama.cpp engine against the plain way of running
it, llama.cpp's own server and the kernel's batched-decode ceiling.

    .venv/bin/python benchmarks/engine.py [--rounds 3] [--before REF]

Prints, from one run:

1. Throughput: the same 64 short chat prompts, greedy, max_tokens 128, in
   interleaved rounds, through
   (a) a plain loop over ``llama_cpp.Llama.create_chat_completion`` (what a
       user would write),
   (b) batchgate's engine (every request submitted at once, as the worker
       does), and with ``--before REF`` the engine as it was at git ref REF,
   (c) ``llama-server -np 16`` with 16 concurrent HTTP clients,
   (d) ``llama-batched-bench``: pure batched decode at B = 1 and B = n_parallel
       (the kernel ceiling: no sampling, no scheduling, no prefill);
   output tokens/s of each, the ratios engine/plain, engine/llama-server and
   how far the engine got towards the ceiling's B=n/B=1; and the profile of a
   step (time in llama_decode against the rest, tokens per step, graph
   computes per step) for the engine and the REF engine, at B = n_parallel
   and at B = 1.
   (c) and (d) are built once from the llama.cpp sources of the installed
   llama-cpp-python (see llama_peers.py); without cmake they are skipped.
2. Shared prefix: 64 requests sharing a ~500-token system prompt,
   max_tokens 32, through the engine with prefix reuse on and off; the ratio.

Each engine runs in its own process (the REF one from ``git archive`` of
REF's ``src/``), one after the other, all on every core. The machine must be
otherwise idle: ratios from a loaded machine prove nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import engine_compare
import engine_profile
import llama_peers

from batchgate import config
from batchgate.backends import llama_cpp as engine_backend
from batchgate.canonical import chat

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


ROOT = Path(__file__).resolve().parents[1]


def _child(spec: dict[str, Any]) -> None:
    """In a child process (batchgate imported from PYTHONPATH): run the engine
    over the prompts with the profiler installed; print one JSON line."""
    probe = engine_profile.install()
    prompts = PROMPTS[: spec["prompts"]]
    requests = _requests(prompts, spec["max_tokens"], spec.get("system"))
    n, secs, replies, stats = asyncio.run(engine_run(requests, spec["options"]))
    own = getattr(stats, "profile", None)
    out = {
        "tokens": n,
        "seconds": secs,
        "probe": probe.as_dict(),
        "own_profile": own.summary() if own is not None else None,
        "texts": [r.text() for r in replies],
    }
    print(json.dumps(out))


def engine_in_child(src: Path, spec: dict[str, Any]) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    command = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"engine child failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def source_at(ref: str, cache_dir: Path) -> Path:
    """``src/`` of git ref ``ref``, extracted once under the cache directory."""
    sha = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", ref],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    target = cache_dir / f"batchgate-{sha}"
    if not (target / "src" / "batchgate").is_dir():
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", sha, "src"], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target / "src"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--part", choices=["all", "throughput", "prefix"], default="all")
    parser.add_argument("--skip-plain", action="store_true", help="no plain loop (tuning)")
    parser.add_argument("--no-peers", action="store_true", help="no llama-server / batched-bench")
    parser.add_argument("--before", metavar="REF", help="also run the engine as of git ref REF")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved throughput rounds")
    parser.add_argument("--prompts", type=int, default=64, help="fewer prompts: a smoke run")
    parser.add_argument("--cache-dir", type=Path, default=llama_peers.default_cache_dir())
    parser.add_argument(
        "--opt",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="engine option override, e.g. --opt n_parallel=8 --opt kv_unified=true",
    )
    args = parser.parse_args()
    if args.child:
        _child(json.loads(args.child))
        return
    options: dict[str, Any] = {}
    for item in args.opt:
        key, _, value = item.partition("=")
        options[key] = value == "true" if value in ("true", "false") else int(value)
    print(f"cores: {_threads()}  engine options: {options or 'defaults'}", flush=True)
    if args.part in ("all", "throughput"):
        engine_compare.throughput(args, options, sys.modules[__name__])
    if args.part in ("all", "prefix"):
        shared_prefix(options)


def shared_prefix(options: dict[str, Any]) -> None:
    requests = _requests(PROMPTS, 32, SYSTEM)
    print("\n2. Shared prefix: 64 requests, shared system prompt, max_tokens 32", flush=True)
    n_on, secs_on, on, stats_on = asyncio.run(engine_run(requests, options))
    print(f"  prefix reuse on:  {secs_on:6.1f} s ({n_on} output tokens)", flush=True)
    n_off, secs_off, off, _ = asyncio.run(engine_run(requests, {**options, "prefix_cache": False}))
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
