"""Every String or Text column of the schema has a declared bound
(``dialects/column_limits.py``) no longer than the column: a value past a
VARCHAR is an error on PostgreSQL, so each must be refused at the edge. A new
column without an entry fails here until its input limit is declared."""

from __future__ import annotations

import sqlalchemy as sa

from batchgate.dialects import column_limits
from batchgate.store import tables


def _string_columns() -> dict[str, sa.Column[str]]:
    return {
        f"{table.name}.{column.name}": column
        for table in tables.metadata.sorted_tables
        for column in table.columns
        if isinstance(column.type, sa.String)  # Text is a String without a length
    }


def test_every_string_column_has_a_bound_that_fits_it() -> None:
    columns = _string_columns()
    assert columns, "the walk found no columns"
    missing = sorted(set(columns) - set(column_limits.COLUMN_BOUNDS))
    assert not missing, f"columns without a declared input limit: {missing}"
    for name, column in columns.items():
        bound = column_limits.COLUMN_BOUNDS[name]
        width = getattr(column.type, "length", None)
        if width is None:
            continue  # Text: bounded by bytes, as the entry says
        assert bound.max_chars is not None, f"{name} is VARCHAR({width}) with no char limit"
        assert bound.max_chars <= width, (
            f"{name}: {bound.how} lets {bound.max_chars} characters into VARCHAR({width})"
        )


def test_every_bound_names_a_column_that_exists() -> None:
    stale = sorted(set(column_limits.COLUMN_BOUNDS) - set(_string_columns()))
    assert not stale, f"bounds for columns that are gone: {stale}"
