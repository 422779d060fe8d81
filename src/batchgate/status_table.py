"""``batchgate status`` with no id: the caller's batches as a table with
progress bars (rich), from the list of all its batches as batch objects and
the Anthropic list (which shows Anthropic batches as their API does)."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

from rich import progress_bar, table, text


@dataclasses.dataclass(frozen=True)
class Row:
    id: str
    status: str
    done: int
    total: int
    failed: int
    created_at: float
    cost: float | None


def from_batch_object(batch: dict[str, Any]) -> Row:
    """An OpenAI-shaped batch object (``/v1/batches``: native and OpenAI batches)."""
    counts = batch["request_counts"]
    return Row(
        id=batch["id"],
        status=batch["status"],
        done=counts["completed"] + counts["failed"],
        total=counts["total"],
        failed=counts["failed"],
        created_at=float(batch["created_at"]),
        cost=batch.get("cost"),
    )


def from_message_batch(batch: dict[str, Any], cost: float | None = None) -> Row:
    """An Anthropic message batch (``/v1/messages/batches``). Its object has
    no cost: ``cost`` is the one the server reports for it on
    ``/v1/batches?all_dialects=true``."""
    counts = batch["request_counts"]
    failed = counts["errored"] + counts["canceled"] + counts["expired"]
    created = datetime.datetime.fromisoformat(batch["created_at"].replace("Z", "+00:00"))
    return Row(
        id=batch["id"],
        status=batch["processing_status"],
        done=counts["succeeded"] + failed,
        total=counts["processing"] + counts["succeeded"] + failed,
        failed=failed,
        created_at=created.timestamp(),
        cost=cost,
    )


def rows(batch_objects: list[dict[str, Any]], message_batches: list[dict[str, Any]]) -> list[Row]:
    """One row per batch, newest first: ``batch_objects`` are every batch of
    the key as batch objects, in the server's exact order
    (``/v1/batches?all_dialects=true``; created_at alone ties within a
    second); an Anthropic batch among them is shown as its
    ``message_batches`` entry says (its status and counts), with the cost
    the batch object carries."""
    anthropic = {batch["id"]: batch for batch in message_batches}
    cost = {batch["id"]: batch.get("cost") for batch in batch_objects}
    found = [
        from_message_batch(anthropic[batch["id"]], cost[batch["id"]])
        if batch["id"] in anthropic
        else from_batch_object(batch)
        for batch in batch_objects
    ]
    # An Anthropic batch made between the two calls is the newest: it still
    # shows, without a cost.
    listed = {row.id for row in found}
    return [from_message_batch(b) for b in message_batches if b["id"] not in listed] + found


_STATUS_STYLE = {
    "completed": "green",
    "ended": "green",
    "in_progress": "cyan",
    "failed": "red",
    "expired": "yellow",
    "cancelling": "yellow",
    "canceling": "yellow",
    "cancelled": "yellow",
}


def render(rows: list[Row]) -> table.Table:
    grid = table.Table(title="Your batches (newest first)", title_justify="left")
    grid.add_column("batch", no_wrap=True)
    grid.add_column("status", no_wrap=True)
    grid.add_column("progress", width=22)
    grid.add_column("done", justify="right", no_wrap=True)
    grid.add_column("failed", justify="right")
    grid.add_column("created (UTC)", no_wrap=True)
    grid.add_column("cost (USD)", justify="right")
    for row in rows:
        grid.add_row(
            row.id,
            text.Text(row.status, style=_STATUS_STYLE.get(row.status, "")),
            progress_bar.ProgressBar(total=max(row.total, 1), completed=row.done, width=20),
            f"{row.done}/{row.total}",
            str(row.failed) if row.failed else "",
            datetime.datetime.fromtimestamp(row.created_at, tz=datetime.UTC).strftime(
                "%Y-%m-%d %H:%M:%S"
            ),
            "" if row.cost is None else f"{row.cost:.4f}",
        )
    return grid
