"""A first `batchgate serve` with no key anywhere: it makes one, shows it once,
and the API is never open without one."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from tests import harness
from tests.e2e import processes


def serve_without_key(
    data_dir: Path, port: int, log: Path, *, port_from_env: bool = False
) -> subprocess.Popen[bytes]:
    """``serve`` with no key given; the port by ``--port``, or as
    ``BATCHGATE_PORT=N make serve`` gives it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHGATE_")}
    config = processes.write_config(
        data_dir / "batchgate.toml",
        {"m": {"backend": "openai_compatible", "base_url": "http://127.0.0.1:9/v1"}},
    )
    port_args = ["--port", str(port)]
    if port_from_env:
        env["BATCHGATE_PORT"], port_args = str(port), []
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
                *port_args,
                "--log-level",
                "warning",
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
        )


def wait_up(port: int) -> None:
    harness.wait_until(lambda: answers_at_all(port), 60, "the server to start", every=0.1)


def answers_at_all(port: int) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
        return True
    return False


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
        second = second_log.read_text()
        assert "BATCHGATE_API_KEY=" not in second  # shown only once
        # ...and the start says how to get another.
        assert "batchgate keys create --admin" in second
        assert str(tmp_path / "batchgate.db") in second
    finally:
        server.terminate()
        server.wait(30)


def test_a_busy_port_is_one_clear_line_and_costs_no_key(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        log = tmp_path / "busy.log"
        refused = serve_without_key(tmp_path, busy, log)
        assert refused.wait(60) != 0
    output = log.read_text()
    assert output.startswith(f"error: cannot listen on 127.0.0.1:{busy}: ")
    assert len(output.strip().splitlines()) == 1 and "Traceback" not in output
    assert "BATCHGATE_PORT=" in output and "--port" in output
    assert "BATCHGATE_API_KEY=" not in output
    # The next start, on a free port chosen the way `BATCHGATE_PORT=N make
    # serve` chooses it, is still the first: it makes and shows the key.
    port = processes.free_port()
    log = tmp_path / "free.log"
    server = serve_without_key(tmp_path, port, log, port_from_env=True)
    try:
        wait_up(port)
        (key,) = re.findall(r"BATCHGATE_API_KEY=(\S+)", log.read_text())
        url = f"http://127.0.0.1:{port}/v1/batches"
        assert httpx.get(url, headers={"authorization": f"Bearer {key}"}).status_code == 200
    finally:
        server.terminate()
        server.wait(30)


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHGATE_")}
    return subprocess.run(
        [sys.executable, "-m", "batchgate.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=cwd,
    )


def test_keys_create_elsewhere_refuses_to_make_a_new_database(tmp_path: Path) -> None:
    """The server's data is ./batchgate-data in the directory it started in;
    `keys create` run anywhere else must not make an empty database whose
    keys that server never sees."""
    repo, elsewhere = tmp_path / "repo", tmp_path / "elsewhere"
    repo.mkdir()
    elsewhere.mkdir()
    created = run_cli("keys", "create", "--name", "first", "--init", cwd=repo)
    assert created.returncode == 0, created.stderr
    assert (repo / "batchgate-data" / "batchgate.db").is_file()
    for command in (["keys", "create", "--name", "lost"], ["keys", "list"]):
        refused = run_cli(*command, cwd=elsewhere)
        assert refused.returncode != 0 and "Traceback" not in refused.stderr
        missing = elsewhere / "batchgate-data" / "batchgate.db"
        assert f"no batchgate database at {missing}" in refused.stderr
        assert "default data directory" in refused.stderr and "--init" in refused.stderr
        assert not (elsewhere / "batchgate-data").exists()
    # Pointed at the server's data, it works from anywhere.
    data = str(repo / "batchgate-data")
    found = run_cli("keys", "create", "--name", "second", "--data-dir", data, cwd=elsewhere)
    assert found.returncode == 0, found.stderr
    listed = run_cli("keys", "list", cwd=repo).stdout
    assert "first" in listed and "second" in listed
