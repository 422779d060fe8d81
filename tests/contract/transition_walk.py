"""The walk both state-machine contracts make (batches: test_transitions.py,
requests: test_request_transitions.py): every store operation on a subject
brought to every state, each move it makes checked against the table, and
the moves made returned, for the caller to compare with the table's edges."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

from batchgate.store import port

State = TypeVar("State")
Subject = TypeVar("Subject")


def moves_made(
    store: port.JobStore,
    states: Iterable[State],
    operations: Mapping[str, Callable[[port.JobStore, Subject], object]],
    *,
    bring: Callable[[port.JobStore, State], Subject],
    read: Callable[[port.JobStore, Subject], State],
    allowed: Callable[[State, State], bool],
) -> set[tuple[State, State]]:
    """Each operation on a fresh subject ``bring`` put in each state: a move
    (``read`` before and after differ) must be ``allowed``; returns them all."""
    made: set[tuple[State, State]] = set()
    for state in states:
        for name, operation in operations.items():
            subject = bring(store, state)
            assert read(store, subject) is state
            operation(store, subject)
            after = read(store, subject)
            if after is not state:
                assert allowed(state, after), f"{name}: {state} -> {after}"
                made.add((state, after))
    return made


def edges(table: Mapping[State, Iterable[State]]) -> set[tuple[State, State]]:
    """The (from, to) pairs of a transition table."""
    return {(source, target) for source, targets in table.items() for target in targets}
