"""Benchmark embeddings on the embedded engine against the plain way of computing them.

    .venv/bin/python benchmarks/embeddings.py [--texts 5000] [--rounds 1] [--server]

The same short texts (a sentence each, ~10 tokens), embedded by the default
SmolLM2 GGUF with mean pooling and normalised, three ways:

(a) a plain loop over ``llama_cpp.Llama.embed``, one text at a time: what a
    user would write (``Llama(model_path, embedding=True)``; mean pooling is
    set because SmolLM2's GGUF declares none, so it would otherwise return one
    vector per token; both sides use every core);
(b) batchgate's engine in-process: one embeddings request per text, all
    submitted at once, as the batch worker hands them to the backend;
(c) with ``--server``: one OpenAI file batch on ``/v1/embeddings`` through a
    ``batchgate serve`` process on the default model, with the official
    ``openai`` SDK: upload, create, poll until completed, download the output
    file; timed from upload to the last output line read.

Prints texts/s of each, the ratios b/a and c/a (goal >= 3x), and checks that
(a) and (b) agree (cosine of the first vectors). The peer runs in the same
process on the same machine, so the ratios hold where absolute figures do
not; the machine is shared, so run it more than once.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import openai

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from batchgate import config  # noqa: E402
from batchgate.backends import llama_cpp as engine_backend  # noqa: E402
from batchgate.canonical import embeddings  # noqa: E402

SUBJECTS = ["The cat", "A farmer", "My neighbour", "The old train", "A small robot", "Our team"]
VERBS = ["painted", "found", "carried", "repaired", "ignored", "described"]
OBJECTS = ["a red door", "the river bank", "three letters", "a broken clock", "the harbour"]


def texts(n: int) -> list[str]:
    """``n`` distinct short sentences (distinct so that no cache could help)."""
    out = []
    for i in range(n):
        s = SUBJECTS[i % len(SUBJECTS)]
        v = VERBS[(i // len(SUBJECTS)) % len(VERBS)]
        o = OBJECTS[(i // (len(SUBJECTS) * len(VERBS))) % len(OBJECTS)]
        out.append(f"{s} {v} {o} on day {i}.")
    return out


THREADS = os.cpu_count() or 1  # both sides; --threads overrides


def _threads() -> int:
    return THREADS


def _cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / (math.hypot(*a) * math.hypot(*b))


def plain_loop(items: list[str]) -> tuple[float, list[float]]:
    """(a): seconds for the loop, and the first vector."""
    import llama_cpp

    llm = llama_cpp.Llama(
        model_path=str(config.default_model_path()),
        embedding=True,
        pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
        n_threads=_threads(),
        n_threads_batch=_threads(),
        verbose=False,
    )
    llm.embed("warm up", normalize=True)
    start = time.perf_counter()
    vectors = [llm.embed(text, normalize=True) for text in items]
    elapsed = time.perf_counter() - start
    llm.close()
    return elapsed, vectors[0]


async def engine_run(items: list[str], options: dict[str, Any]) -> tuple[float, list[float], Any]:
    """(b): seconds for every request at once, the first vector, engine stats."""
    backend = engine_backend.create(
        config.ModelConfig(name="bench", backend="llama_cpp", **options)
    )
    assert isinstance(backend, engine_backend.LlamaCppBackend)
    # Load the model and make the context outside the timed part, as (a) does.
    await backend.embed(embeddings.EmbeddingRequest(model="bench", input=["warm up"]))
    before = backend.embed_stats.decodes
    start = time.perf_counter()
    responses = await asyncio.gather(
        *(backend.embed(embeddings.EmbeddingRequest(model="bench", input=[t])) for t in items)
    )
    elapsed = time.perf_counter() - start
    decodes = backend.embed_stats.decodes - before
    await backend.aclose()
    return elapsed, responses[0].vectors[0], decodes


def _jsonl(items: list[str]) -> bytes:
    return "".join(
        json.dumps(
            {
                "custom_id": f"t{i}",
                "method": "POST",
                "url": "/v1/embeddings",
                "body": {"model": config.DEFAULT_MODEL_NAME, "input": text},
            }
        )
        + "\n"
        for i, text in enumerate(items)
    ).encode()


def _run_batch(client: openai.OpenAI, items: list[str]) -> str | None:
    """One /v1/embeddings file batch, start to output read; None if it went
    well, else what went wrong."""
    upload = client.files.create(file=("texts.jsonl", io.BytesIO(_jsonl(items))), purpose="batch")
    try:
        batch = client.batches.create(
            input_file_id=upload.id, endpoint="/v1/embeddings", completion_window="24h"
        )
    except openai.BadRequestError as exc:
        return f"the server refused an /v1/embeddings batch ({exc.message})"
    while batch.status not in ("completed", "failed", "expired", "cancelled"):
        time.sleep(0.2)
        batch = client.batches.retrieve(batch.id)
    if batch.status != "completed" or batch.output_file_id is None:
        return f"the batch ended {batch.status}: {batch.errors}"
    lines = client.files.content(batch.output_file_id).text.splitlines()
    if len(lines) != len(items):
        return f"{len(lines)} output lines for {len(items)} texts"
    return None


def through_server(items: list[str]) -> float | str:
    """(c): seconds from upload to output read, or why it could not run."""
    import openai
    from tests.e2e import processes

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        cfg = processes.write_config(data / "batchgate.toml", {}, worker={"poll_seconds": 0.05})
        port = processes.free_port()
        with processes.serve(cfg, data, port):
            client = openai.OpenAI(
                base_url=f"http://127.0.0.1:{port}/v1", api_key=processes.API_KEY, max_retries=0
            )
            # Load the model first, as (a) and (b) do.
            problem = _run_batch(client, ["warm up"])
            if problem is not None:
                return problem
            start = time.perf_counter()
            problem = _run_batch(client, items)
            elapsed = time.perf_counter() - start
            return problem if problem is not None else elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=5000, help="how many texts (default 5000)")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds")
    parser.add_argument("--server", action="store_true", help="also (c): through batchgate serve")
    parser.add_argument(
        "--threads", type=int, default=None, help="CPU threads, both sides (default: every core)"
    )
    parser.add_argument(
        "--plain-texts",
        type=int,
        default=None,
        help="time (a) on the first N texts only (its rate is per text; default: all)",
    )
    parser.add_argument("--skip-plain", action="store_true", help="engine side only (tuning)")
    parser.add_argument(
        "--opt",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="engine option override, e.g. --opt embed_n_batch=1024",
    )
    args = parser.parse_args()
    global THREADS
    if args.threads:
        THREADS = args.threads
    options: dict[str, Any] = {"n_threads": THREADS}
    for item in args.opt:
        key, _, value = item.partition("=")
        options[key] = int(value) if value.isdigit() else value
    items = texts(args.texts)
    print(
        f"{len(items)} texts, e.g. {items[0]!r}; cores: {_threads()}; "
        f"engine options: {options or 'defaults'}",
        flush=True,
    )
    rates: dict[str, list[float]] = {"a": [], "b": [], "c": []}
    for round_number in range(1, args.rounds + 1):
        if not args.skip_plain:
            plain_items = items[: args.plain_texts or len(items)]
            secs, first_a = plain_loop(plain_items)
            rates["a"].append(len(plain_items) / secs)
            print(
                f"  round {round_number} (a) plain Llama.embed loop:      "
                f"{secs:7.1f} s = {len(plain_items) / secs:7.1f} texts/s"
                f" ({len(plain_items)} texts)",
                flush=True,
            )
        secs, first_b, decodes = asyncio.run(engine_run(items, options))
        rates["b"].append(len(items) / secs)
        print(
            f"  round {round_number} (b) batchgate engine in-process: "
            f"{secs:7.1f} s = {len(items) / secs:7.1f} texts/s ({decodes} llama_decode calls)",
            flush=True,
        )
        if not args.skip_plain:
            print(f"      cosine of (a) and (b) first vectors: {_cosine(first_a, first_b):.6f}")
        if args.server:
            result = through_server(items)
            if isinstance(result, str):
                print(f"  round {round_number} (c) through batchgate serve: not run: {result}")
            else:
                rates["c"].append(len(items) / result)
                print(
                    f"  round {round_number} (c) batch through batchgate serve: "
                    f"{result:7.1f} s = {len(items) / result:7.1f} texts/s",
                    flush=True,
                )
    if rates["a"]:
        best_a = max(rates["a"])
        for side, label in (("b", "engine in-process"), ("c", "batch through the server")):
            if rates[side]:
                per_round = [x / a for a, x in zip(rates["a"], rates[side], strict=False)]
                print(
                    f"  {label}: best {max(rates[side]):.1f} texts/s against best plain "
                    f"{best_a:.1f}: ratio {side}/a = {max(rates[side]) / best_a:.2f}x "
                    f"(per round: {', '.join(f'{r:.2f}x' for r in per_round)}; goal >= 3x)"
                )


if __name__ == "__main__":
    sys.exit(main())
