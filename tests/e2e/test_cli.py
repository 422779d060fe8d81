"""The `batchgate` command line, as a user runs it (real processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import harness
from tests.e2e import processes
from tests.fakes.upstream import RemoteUpstream, start_process

MODEL = "fake-chat"


def batchgate(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "batchgate.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def upstream() -> Iterator[RemoteUpstream]:
    with start_process() as remote:
        yield remote


@pytest.fixture
def config(tmp_path: Path, upstream: RemoteUpstream) -> Path:
    return processes.write_config(
        tmp_path / "batchgate.toml",
        {MODEL: {"backend": "openai_compatible", "base_url": upstream.openai_base_url}},
        worker={"poll_seconds": 0.05},
    )


def requests_file(path: Path, n: int) -> Path:
    path.write_text(
        "".join(
            json.dumps(
                {
                    "custom_id": f"c{i}",
                    "params": {
                        "model": MODEL,
                        "max_tokens": 8,
                        "messages": [{"role": "user", "content": f"line {i}"}],
                    },
                }
            )
            + "\n"
            for i in range(n)
        )
    )
    return path


def test_keys_create_prints_the_key_last_and_list_and_revoke_work(
    tmp_path: Path, config: Path
) -> None:
    common = ["--config", str(config), "--data-dir", str(tmp_path)]
    created = batchgate("keys", "create", "--name", "alice", "--init", *common)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("bg-") and len(key) > 30
    listed = batchgate("keys", "list", *common).stdout
    assert "alice" in listed and key not in listed  # only a prefix is ever shown again
    assert "\tordinary\t" in listed and "expires never" in listed
    assert batchgate("keys", "revoke", "alice", *common).returncode == 0
    assert "revoked" in batchgate("keys", "list", *common).stdout


def test_keys_create_admin_with_an_expiry(tmp_path: Path, config: Path) -> None:
    common = ["--config", str(config), "--data-dir", str(tmp_path)]
    created = batchgate(
        "keys", "create", "--name", "ops", "--admin", "--expires-in", "30d", "--init", *common
    )
    assert created.returncode == 0, created.stderr
    assert "created admin key" in created.stdout
    listed = batchgate("keys", "list", *common).stdout
    assert "\tadmin\t" in listed and "expires never" not in listed


def test_keys_create_with_quotas(tmp_path: Path, config: Path) -> None:
    common = ["--config", str(config), "--data-dir", str(tmp_path)]
    created = batchgate(
        "keys",
        "create",
        "--name",
        "tenant",
        "--max-enqueued-tokens",
        "m=5000",
        "--max-enqueued-tokens",
        "other=7",
        "--max-active-batches",
        "3",
        "--init",
        *common,
    )
    assert created.returncode == 0, created.stderr
    listed = batchgate("keys", "list", *common).stdout
    assert "max-enqueued-tokens m=5000, max-enqueued-tokens other=7" in listed
    assert "max-active-batches 3" in listed
    refused = batchgate("keys", "create", "--name", "x", "--max-enqueued-tokens", "m", *common)
    assert refused.returncode == 2 and "MODEL=N" in refused.stderr


def test_submit_wait_writes_results_and_status_results_cancel_talk_to_the_server(
    tmp_path: Path, config: Path
) -> None:
    port = processes.free_port()
    env = {"BATCHGATE_URL": f"http://127.0.0.1:{port}", "BATCHGATE_API_KEY": processes.API_KEY}
    source = requests_file(tmp_path / "in.jsonl", 5)
    with processes.serve(config, tmp_path, port):
        submitted = batchgate(
            "submit",
            str(source),
            "--wait",
            "-o",
            str(tmp_path / "out.jsonl"),
            "--poll",
            "0.1",
            env=env,
        )
        assert submitted.returncode == 0, submitted.stderr
        batch_id = submitted.stdout.strip().splitlines()[0]
        lines = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
        assert [line["custom_id"] for line in lines] == [f"c{i}" for i in range(5)]
        status = json.loads(batchgate("status", batch_id, env=env).stdout)
        assert status["status"] == "completed"
        again = batchgate("results", batch_id, env=env).stdout.splitlines()
        assert [json.loads(x) for x in again] == lines
        cancelled = batchgate("cancel", batch_id, env=env)
        assert cancelled.returncode == 0 and "completed" in cancelled.stdout
        missing = batchgate("status", "batch_nope", env=env)
        assert missing.returncode != 0 and "404" in missing.stderr


def test_run_processes_a_file_without_a_server(tmp_path: Path, config: Path) -> None:
    source = requests_file(tmp_path / "in.jsonl", 3)
    ran = batchgate(
        "run",
        str(source),
        "--init",
        "--config",
        str(config),
        "--data-dir",
        str(tmp_path),
        "-o",
        str(tmp_path / "out.jsonl"),
    )
    assert ran.returncode == 0, ran.stderr
    lines = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [line["result"]["type"] for line in lines] == ["succeeded"] * 3


def test_run_reports_bad_input_with_its_path(tmp_path: Path, config: Path) -> None:
    source = tmp_path / "bad.jsonl"
    source.write_text(json.dumps({"custom_id": "a", "params": {"model": MODEL}}) + "\n")
    ran = batchgate("run", str(source), "--config", str(config), "--data-dir", str(tmp_path))
    assert ran.returncode == 2
    # The file's line, not the request body's index (requests[0]).
    assert "line 1: params.max_tokens: Field required" in ran.stderr


def test_models_lists_the_configured_names(tmp_path: Path, config: Path) -> None:
    listed = batchgate("models", "--config", str(config))
    assert listed.stdout.split() == [MODEL, "openai_compatible"]


def test_submit_dry_run_prints_an_estimate_and_retry_reruns_the_failed_rows(
    tmp_path: Path, config: Path, upstream: RemoteUpstream
) -> None:
    port = processes.free_port()
    env = {"BATCHGATE_URL": f"http://127.0.0.1:{port}", "BATCHGATE_API_KEY": processes.API_KEY}
    source = requests_file(tmp_path / "in.jsonl", 4)
    upstream.configure(by_fingerprint={"line 1": ["400"], "line 3": ["400"]})
    with processes.serve(config, tmp_path, port):
        dry = batchgate("submit", str(source), "--dry-run", env=env)
        assert dry.returncode == 0, dry.stderr
        estimate = json.loads(dry.stdout)
        assert estimate["request_count"] == 4 and estimate["max_output_tokens"] == 32
        unknown = tmp_path / "unknown.jsonl"
        unknown.write_text(source.read_text().replace(MODEL, "no-such-model"))
        refused = batchgate("submit", str(unknown), "--dry-run", env=env)
        assert refused.returncode == 1 and '"admitted": false' in refused.stdout
        assert "not admitted: unknown model 'no-such-model'" in refused.stderr
        submitted = batchgate("submit", str(source), "--wait", "--poll", "0.1", env=env)
        parent = submitted.stdout.strip().splitlines()[0]
        retried = batchgate(
            "retry",
            parent,
            "--only-errors",
            "invalid_request_error",
            "--wait",
            "--poll",
            "0.1",
            "-o",
            str(tmp_path / "retried.jsonl"),
            env=env,
        )
        assert retried.returncode == 0, retried.stderr
        lines = [json.loads(x) for x in (tmp_path / "retried.jsonl").read_text().splitlines()]
    assert [(x["custom_id"], x["result"]["type"]) for x in lines] == [
        ("c1", "succeeded"),
        ("c3", "succeeded"),
    ]


def test_retry_wait_writes_the_results_of_an_openai_batch(
    tmp_path: Path, config: Path, upstream: RemoteUpstream
) -> None:
    port = processes.free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"BATCHGATE_URL": url, "BATCHGATE_API_KEY": processes.API_KEY}
    lines = openai_file(tmp_path / "in.jsonl", 4).read_bytes()
    upstream.configure(by_fingerprint={"line 2": ["400"]})
    with processes.serve(config, tmp_path, port):
        with httpx.Client(
            base_url=url, headers={"authorization": f"Bearer {processes.API_KEY}"}
        ) as client:
            uploaded = client.post(
                "/v1/files",
                data={"purpose": "batch"},
                files={"file": ("in.jsonl", lines, "application/jsonl")},
            )
            assert uploaded.status_code == 200, uploaded.text
            created = client.post(
                "/v1/batches",
                json={
                    "input_file_id": uploaded.json()["id"],
                    "endpoint": "/v1/chat/completions",
                    "completion_window": "24h",
                },
            )
            assert created.status_code == 200, created.text
            parent = created.json()["id"]
            harness.wait_until(
                lambda: client.get(f"/v1/batches/{parent}").json()["status"] == "completed",
                60,
                "the parent batch to complete",
                every=0.1,
            )
        retried = batchgate(
            "retry", parent, "--wait", "--poll", "0.1", "-o", str(tmp_path / "r.jsonl"), env=env
        )
        assert retried.returncode == 0, retried.stderr
        written = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    # OpenAI's output-file line shape, for the one row that failed the first time.
    assert [(x["custom_id"], x["response"]["status_code"]) for x in written] == [("c2", 200)]
    assert written[0]["error"] is None


def openai_file(path: Path, n: int) -> Path:
    path.write_text(
        "".join(
            json.dumps(
                {
                    "custom_id": f"c{i}",
                    "method": "POST",
                    "url": "/v1/chat/completions",
                    "body": {
                        "model": MODEL,
                        "max_tokens": 8,
                        "messages": [{"role": "user", "content": f"line {i}"}],
                    },
                }
            )
            + "\n"
            for i in range(n)
        )
    )
    return path


@pytest.mark.parametrize(
    "command",
    [
        ["status"],
        ["status", "batch_x"],
        ["submit", "FILE"],
        ["results", "batch_x"],
        ["cancel", "batch_x"],
        ["retry", "batch_x"],
    ],
)
def test_a_server_that_cannot_be_reached_is_one_line_naming_the_url(
    tmp_path: Path, command: list[str]
) -> None:
    url = f"http://127.0.0.1:{processes.free_port()}"
    source = str(requests_file(tmp_path / "in.jsonl", 2))
    args = [source if part == "FILE" else part for part in command]
    ran = batchgate(*args, env={"BATCHGATE_URL": url, "BATCHGATE_API_KEY": "bg-x"})
    assert ran.returncode != 0
    assert ran.stdout == "" and "Traceback" not in ran.stderr
    (line,) = ran.stderr.strip().splitlines()
    assert line.startswith(f"error: cannot reach the batchgate server at {url} ")
    assert "--url" in line and "BATCHGATE_URL" in line


def test_submit_names_every_bad_line_by_its_number_and_sends_nothing(tmp_path: Path) -> None:
    good = requests_file(tmp_path / "good.jsonl", 1).read_text().strip()
    no_tokens = json.dumps({"custom_id": "b", "params": {"model": MODEL, "messages": []}})
    source = tmp_path / "bad.jsonl"
    source.write_text("\n".join([good, "", no_tokens, "{oops", good, good]) + "\n")
    # No server at this address: the file is refused before any call.
    url = f"http://127.0.0.1:{processes.free_port()}"
    ran = batchgate("submit", str(source), env={"BATCHGATE_URL": url, "BATCHGATE_API_KEY": "k"})
    assert ran.returncode == 2 and "Traceback" not in ran.stderr
    assert "has 4 bad lines; nothing was sent" in ran.stderr
    assert "line 3: params.max_tokens: Field required" in ran.stderr
    assert "line 4: not valid JSON" in ran.stderr
    assert "line 5: custom_id 'c0' was already used on line 1" in ran.stderr
    assert "line 6: custom_id 'c0' was already used on line 1" in ran.stderr
    assert "requests[" not in ran.stderr and "cannot reach" not in ran.stderr


def test_submit_sends_an_openai_file_through_files_and_batches(
    tmp_path: Path, upstream: RemoteUpstream
) -> None:
    """`submit` on OpenAI's line format: uploaded (purpose=batch), a batch on
    the lines' url, `--wait` writes OpenAI output-file lines; a dry run
    leaves no file behind. A limit only the server knows still names the line."""
    cfg = processes.write_config(
        tmp_path / "batchgate.toml",
        {MODEL: {"backend": "openai_compatible", "base_url": upstream.openai_base_url}},
        worker={"poll_seconds": 0.05},
        tables={"limits": {"max_string_chars": 200}},
    )
    port = processes.free_port()
    env = {"BATCHGATE_URL": f"http://127.0.0.1:{port}", "BATCHGATE_API_KEY": processes.API_KEY}
    source = openai_file(tmp_path / "openai-chat-requests.jsonl", 3)
    long_line = requests_file(tmp_path / "long.jsonl", 3).read_text().splitlines()
    long_line[2] = long_line[2].replace("line 2", "x" * 300)
    (tmp_path / "long.jsonl").write_text("\n".join(long_line) + "\n")
    with processes.serve(cfg, tmp_path, port), processes.client(port) as http:
        dry = batchgate("submit", str(source), "--dry-run", env=env)
        assert dry.returncode == 0, dry.stderr
        assert json.loads(dry.stdout)["request_count"] == 3
        assert http.get("/v1/files").json()["data"] == []  # the dry run's upload is gone
        out = tmp_path / "out.jsonl"
        submitted = batchgate(
            "submit", str(source), "--wait", "--poll", "0.1", "-o", str(out), env=env
        )
        assert submitted.returncode == 0, submitted.stderr
        batch_id = submitted.stdout.strip().splitlines()[0]
        batch = processes.batch(http, batch_id)
        assert batch["endpoint"] == "/v1/chat/completions" and batch["status"] == "completed"
        files = http.get("/v1/files").json()["data"]
        (uploaded,) = [f for f in files if f["purpose"] == "batch"]
        assert uploaded["id"] == batch["input_file_id"]
        lines = [json.loads(x) for x in out.read_text().splitlines()]
        assert [(x["custom_id"], x["response"]["status_code"]) for x in lines] == [
            ("c0", 200),
            ("c1", 200),
            ("c2", 200),
        ]
        too_long = batchgate("submit", str(tmp_path / "long.jsonl"), env=env)
        long_openai = source.read_text().replace("line 1", "x" * 300)
        (tmp_path / "long-openai.jsonl").write_text(long_openai)
        failed = batchgate("submit", str(tmp_path / "long-openai.jsonl"), env=env)
    assert too_long.returncode != 0 and "line 3: " in too_long.stderr, too_long.stderr
    assert "requests[" not in too_long.stderr
    # OpenAI's way: the batch is created failed, listing the line.
    assert failed.returncode != 0 and "failed; the server refused:" in failed.stderr
    assert "\n  line 2: " in failed.stderr and "Traceback" not in failed.stderr
