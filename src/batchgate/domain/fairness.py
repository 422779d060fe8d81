"""Fair shares: how many requests to claim from each batch.

API keys take turns first, then the batches of each key, so one key's
100k-request batch cannot starve another key's 10-request batch, and a key's
new small batch is not stuck behind its own big one.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Candidate:
    batch_id: str
    owner: str
    last_claimed_at: float


def fair_shares(candidates: list[Candidate], n: int) -> dict[str, int]:
    """Split ``n`` claims across batches: round-robin over owners (least
    recently served first), then over each owner's batches the same way."""
    if n <= 0 or not candidates:
        return {}
    by_owner: dict[str, list[Candidate]] = {}
    for cand in sorted(candidates, key=lambda c: (c.last_claimed_at, c.batch_id)):
        by_owner.setdefault(cand.owner, []).append(cand)
    queues = list(by_owner.values())
    shares: dict[str, int] = {}
    cursors = [0] * len(queues)
    for turn in range(n):
        queue_index = turn % len(queues)
        queue = queues[queue_index]
        cand = queue[cursors[queue_index] % len(queue)]
        cursors[queue_index] += 1
        shares[cand.batch_id] = shares.get(cand.batch_id, 0) + 1
    return shares
