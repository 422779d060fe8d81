"""`serve`'s keyless /metrics listener when its port is taken."""

from __future__ import annotations

import logging
import socket

import pytest

from batchgate import cli, config
from batchgate.testing import memory_store


def test_a_taken_metrics_port_is_logged_and_serve_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = config.Settings(metrics=config.MetricsSettings(port=port))
        with caplog.at_level(logging.ERROR, logger="batchgate.cli"):
            cli._metrics_listener(settings, memory_store.MemoryJobStore())
    (record,) = caplog.records
    assert f"cannot bind 127.0.0.1:{port}" in record.getMessage()
