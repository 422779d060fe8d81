"""A first `batchgate serve` with no key anywhere: it makes one, shows it once,
and the API is never open without one."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.e2e import processes


def serve_without_key(data_dir: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "BATCHGATE_API_KEY"}
    config = processes.write_config(
        data_dir / "batchgate.toml",
        {"m": {"backend": "openai_compatible", "base_url": "http://127.0.0.1:9/v1"}},
    )
    with log.open("wb") as sink:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "batchgate.cli",
                "serve",
                "--config",
                str(config),
                "--data-dir",
                str(data_dir),
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
        )


def wait_up(port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise TimeoutError("server did not start")


def test_first_start_prints_a_working_key_once_and_never_runs_open(tmp_path: Path) -> None:
    port = processes.free_port()
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    server = serve_without_key(tmp_path, port, first_log)
    try:
        wait_up(port)
        keys = re.findall(r"BATCHGATE_API_KEY=(\S+)", first_log.read_text())
        assert len(keys) == 1
        url = f"http://127.0.0.1:{port}/v1/batches"
        assert httpx.get(url).status_code == 401
        assert httpx.get(url, headers={"authorization": f"Bearer {keys[0]}"}).status_code == 200
        # The first key is the admin key: it manages the others.
        keys_url = f"http://127.0.0.1:{port}/v1/keys"
        listed = httpx.get(keys_url, headers={"authorization": f"Bearer {keys[0]}"})
        assert listed.status_code == 200 and listed.json()["data"][0]["admin"] is True
    finally:
        server.terminate()
        server.wait(30)
    server = serve_without_key(tmp_path, port, second_log)
    try:
        wait_up(port)
        assert "BATCHGATE_API_KEY=" not in second_log.read_text()  # shown only once
    finally:
        server.terminate()
        server.wait(30)
