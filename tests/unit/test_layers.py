"""Imports run one way (DESIGN.md section 2): the store keeps domain data and
knows no wire dialect, and the domain imports no other layer."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import batchgate

PACKAGE = Path(batchgate.__file__).parent


def _imported(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


@pytest.mark.parametrize(
    ("layer", "forbidden"),
    [
        ("store", ("batchgate.dialects", "batchgate.api", "batchgate.services")),
        ("testing", ("batchgate.dialects", "batchgate.api", "batchgate.services")),
        ("domain", ("batchgate.dialects", "batchgate.api", "batchgate.store")),
    ],
)
def test_a_layer_does_not_import_the_layers_above_it(
    layer: str, forbidden: tuple[str, ...]
) -> None:
    offending = sorted(
        f"{path.relative_to(PACKAGE)}: {name}"
        for path in (PACKAGE / layer).rglob("*.py")
        for name in _imported(path)
        if name.startswith(forbidden)
    )
    assert offending == []
