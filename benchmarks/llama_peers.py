"""llama.cpp's own programs as peers of the embedded engine.

``llama-batched-bench`` (pure batched decode: the kernel ceiling) and
``llama-server -np N`` (llama.cpp's own continuous-batching server) are built
once from the llama.cpp sources vendored in the installed llama-cpp-python
version, with the project's flags (``GGML_LLAMAFILE=OFF``, as the Makefile
builds the wheel), and cached under the benchmark's cache directory, so the
three share one kernel build. Without cmake or a compiler the columns are
skipped with a message.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

TARGETS = ("llama-server", "llama-batched-bench")
NO_AMX = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
# The wheel's build (Makefile): no llamafile sgemm, so the kernels match.
CMAKE_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DGGML_LLAMAFILE=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",  # else it would fetch the web UI from the network
    "-DBUILD_SHARED_LIBS=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
)


def default_cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "batchgate" / "benchmarks"


def _version() -> str:
    return importlib.metadata.version("llama-cpp-python")


def _vendored_sources(version: str, cache_dir: Path) -> Path | None:
    """The llama.cpp tree of the installed llama-cpp-python: from uv's build
    cache if it still holds the sdist, else the sdist fetched with pip."""
    uv_cache = Path(os.environ.get("UV_CACHE_DIR") or Path.home() / ".cache" / "uv")
    for tree in uv_cache.glob(f"sdists-v*/pypi/llama-cpp-python/{version}/*/src"):
        if (tree / "vendor" / "llama.cpp" / "CMakeLists.txt").is_file():
            return tree / "vendor" / "llama.cpp"
    unpacked = cache_dir / f"llama_cpp_python-{version}"
    if not (unpacked / "vendor" / "llama.cpp" / "CMakeLists.txt").is_file():
        download = cache_dir / "sdist"
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary"]
        command += [":all:", "-d", str(download), f"llama-cpp-python=={version}"]
        if subprocess.run(command, capture_output=True).returncode != 0:
            return None
        archive = next(download.glob(f"llama_cpp_python-{version}.tar.gz"), None)
        if archive is None:
            return None
        with tarfile.open(archive) as tar:
            tar.extractall(cache_dir, filter="data")
    return unpacked / "vendor" / "llama.cpp"


def build(cache_dir: Path) -> dict[str, Path] | str:
    """The two programs (built on first use), or why they cannot be had."""
    version = _version()
    build_dir = cache_dir / f"llama.cpp-{version}-noamx-build"
    binaries = {name: build_dir / "bin" / name for name in TARGETS}
    if all(path.is_file() for path in binaries.values()):
        return binaries
    if shutil.which("cmake") is None or shutil.which("c++") is None:
        return "no cmake or C++ compiler: llama-server and llama-batched-bench columns skipped"
    cache_dir.mkdir(parents=True, exist_ok=True)
    sources = _vendored_sources(version, cache_dir)
    if sources is None:
        return f"no llama.cpp sources for llama-cpp-python {version}: peer columns skipped"
    print(f"  building {', '.join(TARGETS)} from {sources} (once) ...", flush=True)
    log = cache_dir / f"llama.cpp-{version}-build.log"
    with log.open("w") as out:
        steps = [
            ["nice", "-n", "10", "cmake", "--build", str(build_dir), "-j2", "--target", *TARGETS],
        ]
        # Configured once: a build cut short resumes against the same sources
        # (uv's cache may hold several copies of them).
        if not (build_dir / "CMakeCache.txt").is_file():
            steps.insert(0, ["cmake", "-S", str(sources), "-B", str(build_dir), *CMAKE_FLAGS])
        for step in steps:
            if subprocess.run(step, stdout=out, stderr=subprocess.STDOUT).returncode != 0:
                return f"building llama.cpp failed (see {log}): peer columns skipped"
    return binaries


# Both run with -nr (no weight repacking): should -mno-amx not reach the
# compiler, the AMX kernels live only in the repacked-weights buffer, and
# they segfaulted here (a build of this file did, in its first decode).


def batched_bench(
    binary: Path, model: Path, *, parallel: list[int], prompt: int, generate: int, threads: int
) -> dict[int, float]:
    """Pure decode tok/s at each batch size: ``generate`` tokens per sequence
    after a ``prompt``-token prefill each (random tokens, no sampling)."""
    n_ctx = max(parallel) * (prompt + generate) + 64
    command = [str(binary), "-m", str(model), "-c", str(n_ctx), "-b", "2048", "-ub", "512"]
    command += ["-npp", str(prompt), "-ntg", str(generate), "-npl", ",".join(map(str, parallel))]
    command += ["-t", str(threads), "-tb", str(threads), "-fa", "off", "-nr"]
    command += ["--output-format", "jsonl"]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    speeds: dict[int, float] = {}
    for line in (result.stdout + result.stderr).splitlines():
        if line.startswith("{") and '"speed_tg"' in line:
            row = json.loads(line)
            speeds[int(row["pl"])] = float(row["speed_tg"])
    return speeds


# Not tests.e2e.processes.free_port: this module is loaded inside engine.py's
# children, which import an older batchgate tree that module may not import with.
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def server(binary: Path, model: Path, *, slots: int, n_ctx: int, threads: int) -> Iterator[str]:
    """``llama-server -np slots`` on a free loopback port; yields its URL."""
    port = _free_port()
    command = [str(binary), "-m", str(model), "-np", str(slots), "-c", str(slots * n_ctx)]
    command += ["-t", str(threads), "-tb", str(threads), "--host", "127.0.0.1"]
    command += ["--port", str(port), "--no-webui", "-fa", "off", "-nr"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            if process.poll() is not None:
                raise RuntimeError(f"llama-server exited with {process.returncode}")
            time.sleep(0.2)
        else:
            raise RuntimeError("llama-server did not become ready in 120 s")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _client(
    http: httpx.AsyncClient, queue: asyncio.Queue[str], max_tokens: int, counts: list[int]
) -> None:
    while not queue.empty():
        prompt = queue.get_nowait()
        reply = await http.post(
            "/v1/chat/completions",
            json={
                "messages": [{"role": "user", "content": prompt}],
                "max_tokens": max_tokens,
                # Its own prompt cache stays on (its default), as the
                # engine's prefix reuse does.
                "temperature": 0.0,
            },
        )
        reply.raise_for_status()
        counts.append(int(reply.json()["usage"]["completion_tokens"]))


async def _drive(url: str, prompts: list[str], max_tokens: int, clients: int) -> tuple[int, float]:
    queue: asyncio.Queue[str] = asyncio.Queue()
    for prompt in prompts:
        queue.put_nowait(prompt)
    counts: list[int] = []
    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as http:
        # One short request first, so the timed part starts warm (as the engine's does).
        await http.post(
            "/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1},
        )
        start = time.perf_counter()
        await asyncio.gather(*(_client(http, queue, max_tokens, counts) for _ in range(clients)))
        elapsed = time.perf_counter() - start
    return sum(counts), elapsed


def server_run(
    binary: Path,
    model: Path,
    prompts: list[str],
    *,
    max_tokens: int,
    slots: int,
    clients: int,
    threads: int,
) -> tuple[int, float]:
    """Output tokens and seconds for ``prompts`` sent by ``clients`` concurrent
    HTTP clients to ``llama-server -np slots`` (greedy, as the engine runs)."""
    with server(binary, model, slots=slots, n_ctx=2048, threads=threads) as url:
        return asyncio.run(_drive(url, prompts, max_tokens, clients))
