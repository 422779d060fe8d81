"""A third-party backend package, installed for one test: a real module and a
real ``batchgate.backends`` entry point (a ``.dist-info`` on ``sys.path``),
found by ``importlib.metadata`` exactly as an installed plugin is."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

# A plugin that declares what it serves through its entry point: no tool
# use, a 100-token context. It serves chat with batchgate's shipped fake.
DECLARING = """
from batchgate import testing
from batchgate.backends import base

CAPABILITIES = base.Capabilities(tools=False, max_context=100)


def capabilities(model):
    return CAPABILITIES


def create(model):
    return testing.FakeBackend(capabilities=CAPABILITIES)
"""


def install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, source: str, target: str
) -> None:
    """Install module ``name`` (``source``) with the entry point
    ``name = target`` in group ``batchgate.backends``."""
    root = tmp_path / "site"
    dist = root / f"{name}-1.0.dist-info"
    dist.mkdir(parents=True)
    (root / f"{name}.py").write_text(textwrap.dedent(source))
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[batchgate.backends]\n{name} = {target}\n")
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.delitem(sys.modules, name, raising=False)
