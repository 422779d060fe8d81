"""Part 1 of benchmarks/engine.py: the engine beside the plain loop,
llama-server and the batched-decode ceiling, in interleaved rounds."""

from __future__ import annotations

import argparse
import collections
from pathlib import Path
from typing import Any

import engine_profile
import llama_peers

MAX_TOKENS = 128
SERVER_SLOTS = 16


def _line(label: str, tokens: int, seconds: float) -> float:
    rate = tokens / seconds
    print(f"    {label:44s} {tokens:6d} tokens in {seconds:6.1f} s = {rate:6.1f} tok/s", flush=True)
    return rate


def _engine_side(
    bench: Any,
    label: str,
    side: tuple[Path, dict[str, Any]],
    prompts: int,
    rates: dict[str, list[float]],
) -> dict[str, Any]:
    src, options = side
    spec = {"options": options, "prompts": prompts, "max_tokens": MAX_TOKENS}
    result: dict[str, Any] = bench.engine_in_child(src, spec)
    rates[label].append(_line(label, result["tokens"], result["seconds"]))
    print(f"      profile: {engine_profile.describe(result['probe'], result['seconds'])}")
    if result.get("own_profile"):
        print(f"      engine's own profile: {result['own_profile']}")
    return result


def _peers(bench: Any, args: argparse.Namespace, n_parallel: int) -> dict[str, Any] | None:
    if args.no_peers:
        return None
    built = llama_peers.build(args.cache_dir)
    if isinstance(built, str):
        print(f"  {built}")
        return None
    return {"binaries": built, "model": bench.config.default_model_path(), "n": n_parallel}


def _round(
    bench: Any,
    args: argparse.Namespace,
    sides: dict[str, tuple[Path, dict[str, Any]]],
    peers: dict[str, Any] | None,
    rates: dict[str, list[float]],
) -> None:
    threads = bench._threads()
    prompts = bench.PROMPTS[: args.prompts]
    if not args.skip_plain:
        rates["plain"].append(_line("(a) plain Llama loop", *bench.plain_loop(prompts, MAX_TOKENS)))
    texts = {}
    for label, side in sides.items():
        texts[label] = _engine_side(bench, label, side, len(prompts), rates)["texts"]
    if len(texts) == 2:
        first, second = texts.values()
        same = sum(a == b for a, b in zip(first, second, strict=True))
        print(f"    identical replies, engine before vs now: {same}/{len(first)}")
    if peers is None:
        return
    binaries, model = peers["binaries"], peers["model"]
    tokens, seconds = llama_peers.server_run(
        binaries["llama-server"],
        model,
        prompts,
        max_tokens=MAX_TOKENS,
        slots=SERVER_SLOTS,
        clients=SERVER_SLOTS,
        threads=threads,
    )
    rates["server"].append(
        _line(f"(c) llama-server -np {SERVER_SLOTS}, 16 clients", tokens, seconds)
    )
    speeds = llama_peers.batched_bench(
        binaries["llama-batched-bench"],
        model,
        parallel=[1, peers["n"]],
        prompt=48,
        generate=MAX_TOKENS,
        threads=threads,
    )
    for batch, speed in sorted(speeds.items()):
        rates[f"ceiling B={batch}"].append(speed)
        print(f"    (d) llama-batched-bench, pure decode, B = {batch:<3d}   {speed:24.1f} tok/s")


def throughput(args: argparse.Namespace, options: dict[str, Any], bench: Any) -> None:
    n_parallel = int(options.get("n_parallel", 16))
    sides = {"(b) batchgate engine": (bench.ROOT / "src", options)}
    if args.before:
        before = bench.source_at(args.before, args.cache_dir)
        sides[f"(b0) engine as of {args.before}"] = (before, options)
    print(
        f"\n1. Throughput: {args.prompts} short chat prompts, greedy, max_tokens {MAX_TOKENS}, "
        f"{args.rounds} interleaved rounds (best of each side is its capability)",
        flush=True,
    )
    peers = _peers(bench, args, n_parallel)
    rates: dict[str, list[float]] = collections.defaultdict(list)
    for number in range(1, args.rounds + 1):
        print(f"  round {number}", flush=True)
        _round(bench, args, sides, peers, rates)
    _profile_at_one(bench, sides)
    _summary(rates, n_parallel)


def _profile_at_one(bench: Any, sides: dict[str, tuple[Path, dict[str, Any]]]) -> None:
    """The profile of a step at B = 1 (one slot), 8 prompts, for each engine."""
    print("  profile at B = 1 (n_parallel = 1, 8 prompts):", flush=True)
    for label, (src, options) in sides.items():
        spec = {"options": {**options, "n_parallel": 1}, "prompts": 8, "max_tokens": MAX_TOKENS}
        result = bench.engine_in_child(src, spec)
        rate = result["tokens"] / result["seconds"]
        described = engine_profile.describe(result["probe"], result["seconds"])
        print(f"    {label}: {rate:.1f} tok/s; {described}")


def _summary(rates: dict[str, list[float]], n_parallel: int) -> None:
    best = {label: max(values) for label, values in rates.items() if values}
    engine = best["(b) batchgate engine"]
    print("  best of the rounds, ratios:")
    if "plain" in best:
        for label in (k for k in best if k.startswith("(b")):
            print(f"    {label} / plain loop = {best[label] / best['plain']:.2f}x")
        print(f"      per round: {_per_round(rates, '(b) batchgate engine', 'plain')}")
    if "server" in best:
        print(f"    engine / llama-server = {engine / best['server']:.2f}x  (must be >= 1.0x)")
    low, high = best.get("ceiling B=1"), best.get(f"ceiling B={n_parallel}")
    if low and high:
        ceiling = high / low
        print(f"    ceiling B={n_parallel} / B=1 = {ceiling:.2f}x")
        if "plain" in best:
            gain = engine / best["plain"]
            print(
                f"    engine / ceiling = {gain / ceiling:.2f} (engine / plain {gain:.2f}x against "
                f"the ceiling's {ceiling:.2f}x; must be >= 1.25x and > 0.80)"
            )


def _per_round(rates: dict[str, list[float]], top: str, bottom: str) -> str:
    pairs = zip(rates[top], rates[bottom], strict=False)
    return ", ".join(f"{a / b:.2f}x" for a, b in pairs)
