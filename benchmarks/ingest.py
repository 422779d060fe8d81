"""Benchmark OpenAI-dialect ingest and result download against a real server.

    .venv/bin/python benchmarks/ingest.py [--lines 50000] [--repeat 3] [--database-url URL]

(``--database-url`` must name a throwaway database: the run leaves its rows there.)

Prints, from one run against a ``batchgate serve --no-worker`` subprocess on a
temporary data directory (SQLite unless ``--database-url`` is given):

1. Ingest: a 50,000-line input file (about 25 MB) uploaded with the official
   ``openai`` SDK and turned into an ``in_progress`` batch; the time of each
   step and the server process's peak RSS growth over its idle baseline
   (sampled every 5 ms in a thread). Targets: under 10 s, under 200 MB.
2. Download: every request is completed by writing a result straight through
   the store API from this process (claim + record_outcomes + finalize, as a
   worker would, without any upstream), then the 50,000-line output file is
   streamed from the server. Its rate is compared with the plain peer: reading
   the downloaded file back with ``json.loads`` line by line in a loop, in the
   same run. Target: at least 50 MB/s.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
from rss_sampler import RssSampler

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e import processes

from batchgate.canonical import chat
from batchgate.domain import batch as batch_model
from batchgate.domain.states import RequestState
from batchgate.store import port, sql

MODEL = "bench-chat"
API_KEY = "bg-bench-key-0123456789abcdef"
MB = 1_000_000


def input_line(i: int) -> bytes:
    body = {
        "model": MODEL,
        "max_tokens": 256,
        "temperature": 0.2,
        "messages": [
            {"role": "system", "content": "You are a careful assistant. Answer briefly."},
            {
                "role": "user",
                "content": f"Question {i}: summarise this passage in one sentence. "
                + "The quick brown fox jumps over the lazy dog. " * 4,
            },
        ],
    }
    line = {"custom_id": f"request-{i}", "method": "POST", "url": "/v1/chat/completions"}
    return json.dumps({**line, "body": body}).encode() + b"\n"


def write_input(path: Path, lines: int) -> int:
    with path.open("wb") as fh:
        for i in range(lines):
            fh.write(input_line(i))
    return path.stat().st_size


@contextlib.contextmanager
def serve(data_dir: Path, database_url: str | None) -> Iterator[tuple[str, int]]:
    config_file = data_dir / "batchgate.toml"
    config_file.write_text(
        f'[models."{MODEL}"]\nbackend = "openai_compatible"\n'
        'base_url = "http://127.0.0.1:9/v1"\n'  # never called: no worker runs
    )
    port = processes.free_port()
    args = [sys.executable, "-m", "batchgate.cli", "serve", "--config", str(config_file)]
    args += ["--data-dir", str(data_dir)]
    if database_url:
        args += ["--database-url", database_url]
    args += ["--no-worker", "--port", str(port), "--api-key", API_KEY]
    args += ["--log-level", "warning"]
    log = (data_dir / "server.log").open("wb")
    server = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            if server.poll() is not None or time.monotonic() > deadline:
                log.flush()
                output = (data_dir / "server.log").read_text()
                raise RuntimeError(f"batchgate serve did not start:\n{output}")
            time.sleep(0.05)
        yield url, server.pid
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


REPLY = chat.ChatResponse(
    id="msg_bench",
    model=MODEL,
    content=[
        chat.TextBlock(
            text="The passage says a quick brown fox jumps over a lazy dog, several times "
            "over, which is a pangram used to show every letter of the alphabet."
        )
    ],
    stop_reason="end_turn",
    usage=chat.Usage(input_tokens=120, output_tokens=32),
).model_dump(exclude_none=True)


def complete_everything(store: port.JobStore, batch_id: str) -> int:
    """Finish every request with a canned reply, through the store API."""
    done = 0
    while True:
        claimed = store.claim(MODEL, 5000, "bench-writer", time.time(), 600.0)
        if not claimed:
            break
        outcomes = [
            batch_model.Outcome(
                request_id=c.id,
                attempt=c.attempt,
                worker_id="bench-writer",
                state=RequestState.SUCCEEDED,
                result=REPLY,
                input_tokens=120,
                output_tokens=32,
            )
            for c in claimed
        ]
        store.record_outcomes(outcomes, time.time())
        done += len(claimed)
    store.finalize_batches(time.time(), [batch_id])
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--lines", type=int, default=50_000)
    parser.add_argument("--database-url", help="default: SQLite in the temporary data dir")
    parser.add_argument("--repeat", type=int, default=3, help="downloads (best is reported)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="batchgate-bench-") as tmp:
        data_dir = Path(tmp)
        input_path = data_dir / "input.jsonl"
        size = write_input(input_path, args.lines)
        print(f"input file: {args.lines} lines, {size / MB:.1f} MB")
        database_url = args.database_url or f"sqlite:///{data_dir / 'batchgate.db'}"

        with (
            serve(data_dir, args.database_url) as (url, pid),
            openai.OpenAI(base_url=f"{url}/v1", api_key=API_KEY, timeout=600) as client,
        ):
            client.models.list()  # warm the server up (imports, first query)
            sampler = RssSampler(pid, interval=0.005)
            baseline = sampler.rss()
            with sampler:
                t0 = time.perf_counter()
                with input_path.open("rb") as fh:
                    uploaded = client.files.create(file=fh, purpose="batch")
                t1 = time.perf_counter()
                batch = client.batches.create(
                    input_file_id=uploaded.id,
                    endpoint="/v1/chat/completions",
                    completion_window="24h",
                )
                t2 = time.perf_counter()
            assert batch.status == "in_progress", batch
            assert batch.request_counts is not None
            assert batch.request_counts.total == args.lines
            growth = (sampler.peak - baseline) / MB
            ingest = t2 - t1 + (t1 - t0)
            print("\n== ingest (upload + create), server: batchgate serve --no-worker")
            print(f"upload            {t1 - t0:7.2f} s  ({size / MB / (t1 - t0):.0f} MB/s)")
            print(f"create (validate) {t2 - t1:7.2f} s  -> {batch.status}, {args.lines} requests")
            print(f"total             {ingest:7.2f} s   target < 10 s    {_ok(ingest < 10)}")
            print(
                f"server RSS        {baseline / MB:7.0f} MB idle, peak growth {growth:.0f} MB   "
                f"target < 200 MB  {_ok(growth < 200)}"
            )

            store = sql.SqlJobStore.open(database_url)
            try:
                t3 = time.perf_counter()
                done = complete_everything(store, batch.id)
                t4 = time.perf_counter()
            finally:
                store.close()
            print(
                f"\n(results written straight through the store API, no worker/upstream: "
                f"{done} requests in {t4 - t3:.1f} s)"
            )
            ended = client.batches.retrieve(batch.id)
            assert ended.status == "completed" and ended.output_file_id, ended

            output_path = data_dir / "output.jsonl"
            sampler = RssSampler(pid, interval=0.005)
            baseline = sampler.rss()
            cpu_before = sampler.process.cpu_times()
            with sampler:
                download_times = [
                    download(url, ended.output_file_id, output_path) for _ in range(args.repeat)
                ]
            cpu_after = sampler.process.cpu_times()
            download_growth = (sampler.peak - baseline) / MB
            # CPU seconds the server spent per download: a figure the machine's
            # other load does not distort, unlike wall-clock rates.
            server_cpu = (
                cpu_after.user + cpu_after.system - cpu_before.user - cpu_before.system
            ) / args.repeat

        out_size = output_path.stat().st_size
        peer_times = [json_loads_loop(output_path, args.lines) for _ in range(args.repeat)]
        download_rate = out_size / MB / min(download_times)
        peer_rate = out_size / MB / min(peer_times)
        print(f"\n== download: output file, {args.lines} lines, {out_size / MB:.1f} MB")
        print(
            f"(best of {args.repeat}; load average {os.getloadavg()[0]:.1f} "
            f"on {os.cpu_count()} CPUs)"
        )
        print(
            f"batchgate stream  {min(download_times):7.2f} s  {download_rate:6.1f} MB/s   "
            f"target >= 50 MB/s  {_ok(download_rate >= 50)}"
        )
        print(
            f"  all runs: {_rates(out_size, download_times)}; "
            f"server RSS growth {download_growth:.0f} MB"
        )
        print(
            f"  server CPU per download {server_cpu:.2f} s -> "
            f"{out_size / MB / server_cpu:.0f} MB per server CPU-second"
        )
        print(f"json.loads loop   {min(peer_times):7.2f} s  {peer_rate:6.1f} MB/s   (plain peer)")
        print(f"  all runs: {_rates(out_size, peer_times)}")
        print(f"ratio download / json.loads loop: {download_rate / peer_rate:.2f}")
    return 0


def download(url: str, file_id: str, path: Path) -> float:
    """Stream a file from the server to disk; seconds taken."""
    with httpx.Client(base_url=url, timeout=600) as http, path.open("wb") as out:
        start = time.perf_counter()
        with http.stream(
            "GET", f"/v1/files/{file_id}/content", headers={"authorization": f"Bearer {API_KEY}"}
        ) as response:
            response.raise_for_status()
            for chunk in response.iter_bytes():
                out.write(chunk)
        return time.perf_counter() - start


def json_loads_loop(path: Path, expected: int) -> float:
    """The peer: read the same JSONL back with json.loads, line by line."""
    start = time.perf_counter()
    count = 0
    with path.open("rb") as fh:
        for raw in fh:
            json.loads(raw)
            count += 1
    elapsed = time.perf_counter() - start
    assert count == expected, count
    return elapsed


def _rates(size: int, times: list[float]) -> str:
    return ", ".join(f"{size / MB / t:.0f}" for t in times) + " MB/s"


def _ok(passed: bool) -> str:
    return "ok" if passed else "MISSED"


if __name__ == "__main__":
    raise SystemExit(main())
