"""No function in src/ is longer than 60 lines (its ``def`` line to its last
line, nested functions included in their parent): past that a function
holds more than one decision, and its name no longer says what it does."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "batchgate"
MAX_LINES = 60


def _lengths(path: Path, root: Path = SRC) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            assert node.end_lineno is not None
            lines = node.end_lineno - node.lineno + 1
            found.append((lines, f"{path.relative_to(root)}:{node.lineno} {node.name}"))
    return found


def test_no_function_in_src_is_over_60_lines() -> None:
    every = (entry for path in SRC.rglob("*.py") for entry in _lengths(path))
    too_long = sorted((entry for entry in every if entry[0] > MAX_LINES), reverse=True)
    assert not too_long, "\n".join(f"{lines} lines: {where}" for lines, where in too_long)


def test_the_scan_finds_a_long_function(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES))
    (tmp_path / "long.py").write_text(f"def long():\n{body}\n")
    assert _lengths(tmp_path / "long.py", tmp_path) == [(MAX_LINES + 1, "long.py:1 long")]
