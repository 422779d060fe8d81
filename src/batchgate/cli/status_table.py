"""``batchgate status`` with no id: the caller's batches as a table with
progress bars (rich), from the list of all its batches as batch objects and
the Anthropic list (which shows Anthropic batches as their API does)."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

from rich import progress_bar, table, text
from rich.console import RenderableType


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


_COST_HEADER = "cost (USD)"
_CREATED_FORMAT = "%Y-%m-%d %H:%M:%S"
_MIN_BAR, _MAX_BAR = 8, 20


def _widths(rows: list[Row]) -> dict[str, int]:
    """Each column's widest cell or header (the progress bar aside)."""
    return {
        "batch": max(len("batch"), *(len(r.id) for r in rows)),
        "status": max(len("status"), *(len(r.status) for r in rows)),
        "done": max(len("done"), *(len(f"{r.done}/{r.total}") for r in rows)),
        "failed": max(len("failed"), *(len(str(r.failed)) for r in rows)),
        "cost": max(len(_COST_HEADER), *(len(_cost(r)) for r in rows)),
        "created": len("2024-01-01 00:00:00"),
    }


def _cost(row: Row) -> str:
    return "" if row.cost is None else f"{row.cost:.4f}"


def _layout(rows: list[Row], width: int) -> tuple[int, set[str]]:
    """The progress bar's width (0: none) and the optional columns that fit
    in ``width`` beside the key ones (batch, status, done, failed), which
    are never squeezed. Each column costs its cells plus 3 (padding and a
    rule); the table's left edge 1 more. Less important columns go first:
    created, then cost, then the bar."""
    widths = _widths(rows)
    room = width - 1 - sum(widths[c] + 3 for c in ("batch", "status", "done", "failed"))
    bar = min(_MAX_BAR, room - 3)
    if bar < _MIN_BAR:
        return 0, set()
    room -= bar + 3
    shown: set[str] = set()
    for column in ("cost", "created"):
        if widths[column] + 3 <= room:
            shown.add(column)
            room -= widths[column] + 3
    return bar, shown


def render(rows: list[Row], width: int = 200) -> table.Table:
    """The table for a terminal ``width`` columns wide; the key columns stay
    whole at 80 (the id is what the other commands take)."""
    bar, shown = _layout(rows, width) if rows else (_MAX_BAR, {"cost", "created"})
    grid = table.Table(title="Your batches (newest first)", title_justify="left")
    grid.add_column("batch", no_wrap=True)
    grid.add_column("status", no_wrap=True)
    if bar:
        grid.add_column("progress", width=bar, no_wrap=True)
    grid.add_column("done", justify="right", no_wrap=True)
    grid.add_column("failed", justify="right", no_wrap=True)
    if "created" in shown:
        grid.add_column("created (UTC)", no_wrap=True)
    if "cost" in shown:
        grid.add_column(_COST_HEADER, justify="right", no_wrap=True)
    for row in rows:
        cells: list[RenderableType] = [
            row.id,
            text.Text(row.status, style=_STATUS_STYLE.get(row.status, "")),
        ]
        if bar:
            done, total = row.done, max(row.total, 1)
            cells.append(progress_bar.ProgressBar(total=total, completed=done, width=bar))
        cells += [f"{row.done}/{row.total}", str(row.failed) if row.failed else ""]
        if "created" in shown:
            moment = datetime.datetime.fromtimestamp(row.created_at, tz=datetime.UTC)
            cells.append(moment.strftime(_CREATED_FORMAT))
        if "cost" in shown:
            cells.append(_cost(row))
        grid.add_row(*cells)
    return grid
