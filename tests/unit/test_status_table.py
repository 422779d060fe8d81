"""`batchgate status` rows from either list route, rendered with rich."""

from __future__ import annotations

from rich.console import Console

from batchgate import status_table


def test_an_anthropic_batch_counts_every_ending_as_done() -> None:
    row = status_table.from_message_batch(
        {
            "id": "msgbatch_1",
            "processing_status": "in_progress",
            "request_counts": {
                "processing": 5,
                "succeeded": 3,
                "errored": 1,
                "canceled": 0,
                "expired": 1,
            },
            "created_at": "2024-08-20T18:37:24.100435Z",
        }
    )
    assert (row.done, row.total, row.failed) == (5, 10, 2)
    assert row.created_at == 1724179044.100435


def test_the_table_shows_progress_and_newest_first() -> None:
    rows = status_table.newest(
        [
            status_table.Row("batch_old", "completed", 4, 4, 0, 100.0, 0.25),
            status_table.Row("batch_new", "in_progress", 1, 8, 1, 200.0, None),
        ],
        limit=10,
    )
    console = Console(record=True, width=150, color_system=None)
    console.print(status_table.render(rows))
    text = console.export_text()
    assert text.index("batch_new") < text.index("batch_old")
    assert "1/8" in text and "4/4" in text and "0.2500" in text
