"""One page of a keyset-paginated listing, cut the same way by every store.

A store reads ``limit + 1`` items from the pivot in the order it walks; the
extra one only says whether more remain. Listings are newest first, so a walk
towards newer items (``before`` alone) reads upwards and the page is turned
round."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

_Item = TypeVar("_Item")


def walks_upwards(after: str | None, before: str | None) -> bool:
    """Whether the walk goes towards newer items: ``before`` without ``after``."""
    return bool(before and not after)


def page(items: Sequence[_Item], limit: int, *, upwards: bool = False) -> tuple[list[_Item], bool]:
    """The first ``limit`` of ``items`` (in walking order) as presented, and
    whether more remain."""
    cut = list(items[:limit])
    if upwards:
        cut.reverse()
    return cut, len(items) > limit
