"""`batchgate status` rows from either list route, rendered with rich."""

from __future__ import annotations

from rich.console import Console

from batchgate.cli import status_table


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


def test_the_table_shows_progress_counts_and_cost() -> None:
    rows = [
        status_table.Row("batch_new", "in_progress", 1, 8, 1, 200.0, None),
        status_table.Row("batch_old", "completed", 4, 4, 0, 100.0, 0.25),
    ]
    console = Console(record=True, width=150, color_system=None)
    console.print(status_table.render(rows))
    text = console.export_text()
    assert text.index("batch_new") < text.index("batch_old")
    assert "1/8" in text and "4/4" in text and "0.2500" in text


def _message_batch(batch_id: str) -> dict[str, object]:
    return {
        "id": batch_id,
        "processing_status": "ended",
        "request_counts": {
            "processing": 0,
            "succeeded": 2,
            "errored": 0,
            "canceled": 0,
            "expired": 0,
        },
        "created_at": "2024-08-20T18:37:24Z",
    }


def test_an_anthropic_batch_takes_its_cost_from_its_batch_object() -> None:
    native = {
        "id": "batch_1",
        "status": "completed",
        "request_counts": {"total": 1, "completed": 1, "failed": 0},
        "created_at": 100,
        "cost": 0.5,
    }
    as_batch_object = {**native, "id": "msgbatch_1", "cost": 0.125}
    found = status_table.rows(
        [as_batch_object, native], [_message_batch("msgbatch_2"), _message_batch("msgbatch_1")]
    )
    assert [row.id for row in found] == ["msgbatch_2", "msgbatch_1", "batch_1"]  # newest first
    rows = {row.id: row for row in found}
    assert (rows["msgbatch_1"].status, rows["msgbatch_1"].cost) == ("ended", 0.125)
    assert (rows["batch_1"].status, rows["batch_1"].cost) == ("completed", 0.5)
    assert rows["msgbatch_2"].cost is None  # made after the first list: shown, no cost


def test_at_80_columns_the_key_columns_stay_whole_and_the_rest_drop_first() -> None:
    rows = [
        status_table.Row("msgbatch_" + "a" * 24, "in_progress", 12345, 50000, 321, 200.0, 1.5),
        status_table.Row("batch_" + "b" * 24, "completed", 4, 4, 0, 100.0, 0.25),
    ]
    console = Console(record=True, width=80, color_system=None)
    console.print(status_table.render(rows, console.width))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    for row in rows:  # whole ids: the other commands take them
        assert row.id in text
    assert "in_progress" in text and "12345/50000" in text and "321" in text
    assert "created" not in text  # the least important column went first
    wide = Console(record=True, width=150, color_system=None)
    wide.print(status_table.render(rows, wide.width))
    wide_text = wide.export_text()
    assert "created (UTC)" in wide_text and "cost (USD)" in wide_text and "progress" in wide_text
