"""ARCHITECTURE.md maps each behaviour to its file: every path it names exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "batchgate"


def _named_paths() -> list[str]:
    text = (ROOT / "ARCHITECTURE.md").read_text()
    names = re.findall(r"`([\w./-]+)`", text)
    return [n for n in names if n.endswith((".py", "/")) or "/" in n]


def test_the_map_names_paths() -> None:
    assert len(_named_paths()) > 40


def test_every_path_in_the_map_exists() -> None:
    missing = [
        name
        for name in _named_paths()
        if not (PACKAGE / name).exists() and not (ROOT / name).exists()
    ]
    assert missing == []
