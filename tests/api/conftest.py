"""Fixtures shared by the API suites."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.upstream import FakeUpstream


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    """A scripted fake upstream (OpenAI- and Anthropic-compatible) on loopback."""
    with FakeUpstream() as fake:
        yield fake
