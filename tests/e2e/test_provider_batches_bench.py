"""benchmarks/provider_batches.py at its smoke size: the script still runs end
to end (fake upstream, an upstream batchgate, a routing batchgate with an
``openai_batch`` and an ``openai_compatible`` model). It exits non-zero when
a request did not succeed, a tenant's results do not match its requests, or
the upstream saw more batches than ceil(requests / job size). No timing is
asserted: the figures are the script's to print, not this test's to judge."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_smoke_size_routes_through_two_upstream_batches() -> None:
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "provider_batches.py"),
            *("--requests", "200", "--batches", "4", "--keys", "3"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    # Jobs of 100 (half the requests): the 4 tenant batches of 3 keys make 2
    # upstream batches, not one per tenant batch.
    assert "upstream batches per round: [2]" in run.stdout, run.stdout
