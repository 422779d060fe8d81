"""A model's recent work, for dry-run ETAs (domain/estimate.py)."""

from __future__ import annotations

import sqlalchemy as sa

from batchgate.domain import estimate
from batchgate.domain.states import RequestState
from batchgate.store.sql_common import R, SqlBase


class Throughput(SqlBase):
    def recent_work(self, model: str, since: float) -> estimate.RecentWork:
        """The model's requests that succeeded since ``since``: their number,
        tokens, the time each spent in its backend call, and the time the
        model was busy with them: the sum of each batch's span from its first
        start to its last end, so idle time between batches does not count."""
        started = sa.func.coalesce(R.c.generating_at, R.c.started_at, R.c.finished_at)
        per_batch = (
            sa.select(
                sa.func.count().label("requests"),
                sa.func.sum(R.c.input_tokens + R.c.output_tokens).label("tokens"),
                sa.func.sum(R.c.output_tokens).label("output_tokens"),
                sa.func.sum(R.c.finished_at - started).label("request_seconds"),
                (sa.func.max(R.c.finished_at) - sa.func.min(started)).label("span"),
            )
            .where(
                R.c.model == model,
                R.c.state == RequestState.SUCCEEDED.value,
                R.c.finished_at >= since,
            )
            .group_by(R.c.batch_id)
            .subquery()
        )
        with self._read() as conn:
            row = conn.execute(
                sa.select(
                    sa.func.coalesce(sa.func.sum(per_batch.c.requests), 0),
                    sa.func.coalesce(sa.func.sum(per_batch.c.tokens), 0),
                    sa.func.coalesce(sa.func.sum(per_batch.c.output_tokens), 0),
                    sa.func.coalesce(sa.func.sum(per_batch.c.request_seconds), 0.0),
                    sa.func.coalesce(sa.func.sum(per_batch.c.span), 0.0),
                )
            ).one()
        requests, tokens, output_tokens, request_seconds, busy = row
        return estimate.RecentWork(
            requests=int(requests),
            tokens=int(tokens),
            busy_seconds=max(float(busy), 0.0),
            output_tokens=int(output_tokens),
            request_seconds=max(float(request_seconds), 0.0),
        )
