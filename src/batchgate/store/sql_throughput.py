"""A model's recent work, for dry-run ETAs (domain/estimate.py)."""

from __future__ import annotations

import sqlalchemy as sa

from batchgate.domain import estimate
from batchgate.domain.states import RequestState
from batchgate.store.sql_common import R, SqlBase


class Throughput(SqlBase):
    def recent_work(self, model: str, since: float) -> estimate.RecentWork:
        """The model's requests that succeeded since ``since``: their number,
        tokens, and the span from the first start to the last end."""
        with self._read() as conn:
            row = conn.execute(
                sa.select(
                    sa.func.count(),
                    sa.func.coalesce(sa.func.sum(R.c.input_tokens + R.c.output_tokens), 0),
                    sa.func.min(R.c.started_at),
                    sa.func.max(R.c.finished_at),
                ).where(
                    R.c.model == model,
                    R.c.state == RequestState.SUCCEEDED.value,
                    R.c.finished_at >= since,
                )
            ).one()
        count, tokens, first, last = row
        busy = float(last - first) if first is not None and last is not None else 0.0
        return estimate.RecentWork(int(count), int(tokens), max(busy, 0.0))
