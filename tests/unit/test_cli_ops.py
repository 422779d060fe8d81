"""What the server-side commands do about operations: `serve`'s keyless
/metrics listener when its port is taken, and the log options."""

from __future__ import annotations

import logging
import socket

import pytest

from batchgate import cli, config, logs
from batchgate.cli import local as cli_local
from batchgate.domain import batch as bm
from batchgate.domain import failures
from batchgate.domain.states import RequestState
from batchgate.testing import memory_store
from batchgate.worker import trace

SECRET = "the user's prompt, echoed by the upstream"


def test_a_taken_metrics_port_is_logged_and_serve_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = config.Settings(metrics=config.MetricsSettings(port=port))
        with caplog.at_level(logging.ERROR, logger="batchgate.cli"):
            cli_local.metrics_listener(settings, memory_store.MemoryJobStore())
    (record,) = caplog.records
    assert f"cannot bind 127.0.0.1:{port}" in record.getMessage()


@pytest.mark.parametrize("command", ["serve", "worker", "run"])
def test_every_command_that_runs_requests_takes_the_log_options(command: str) -> None:
    argv = [command, "--log-format", "json", "--log-level", "debug", "--log-error-messages"]
    args = cli.build_parser().parse_args([*argv, *(["batch.jsonl"] if command == "run" else [])])
    assert (args.log_format, args.log_level, args.log_error_messages) == ("json", "debug", True)


def _errored_attempt(caplog: pytest.LogCaptureFixture) -> logging.LogRecord:
    request = bm.ClaimedRequest(1, "batch_1", "c1", "m", "{}", 1)
    error = failures.RequestError(failures.ErrorType.INVALID_REQUEST, SECRET, status_code=400)
    outcome = bm.Outcome(1, 1, "w1", RequestState.ERRORED, error=error)
    with caplog.at_level(logging.INFO, logger="batchgate.requests"):
        trace.attempt_ended(request, outcome, True, 0.01)
    (record,) = caplog.records
    return record


def test_an_upstream_error_is_logged_by_type_and_status_not_its_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    record = _errored_attempt(caplog)
    assert (record.error_type, record.status_code) == ("invalid_request_error", 400)  # type: ignore[attr-defined]
    assert not hasattr(record, "error_message") and SECRET not in record.getMessage()


def test_the_upstream_error_text_is_logged_when_asked_for(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logs, "_error_messages", True)
    assert _errored_attempt(caplog).error_message == SECRET  # type: ignore[attr-defined]
