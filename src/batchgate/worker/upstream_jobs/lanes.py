"""What worker/loop.py needs beside the driver: which backends get a lane
(one call per request) and which a driver, and what a row served by a
provider-batch model's real-time lane cost the operator."""

from __future__ import annotations

from collections.abc import Iterable

from batchgate import config
from batchgate.backends import base
from batchgate.backends import provider_batch as pb
from batchgate.domain import batch as batch_model
from batchgate.domain import upstream_jobs as uj
from batchgate.domain.states import RequestState
from batchgate.metrics import worker as worker_metrics


def count_realtime(
    metrics: worker_metrics.Recorder, model: str, outcome: batch_model.Outcome, applied: bool
) -> None:
    """What a request served by the real-time lane of a provider-batch model
    cost the operator: the list price, twice the batch price the tenant is
    billed (``outcome.cost``); the whole of it a loss if the write was fenced
    off."""
    if outcome.state is not RequestState.SUCCEEDED:
        return
    usd = outcome.cost / config.BATCH_DISCOUNT
    metrics.upstream_cost(model, uj.Path.REALTIME.value, usd)
    if not applied:
        metrics.dropped_cost(model, usd)


def split_backends(
    backends: Iterable[tuple[str, base.Backend]],
) -> tuple[dict[str, base.Backend], dict[str, pb.ProviderBatchBackend]]:
    """The backends a worker serves one call per request (lanes), and the
    provider-batch ones it drives jobs for."""
    plain: dict[str, base.Backend] = {}
    batch: dict[str, pb.ProviderBatchBackend] = {}
    for name, backend in backends:
        if isinstance(backend, pb.ProviderBatchBackend):
            batch[name] = backend
        else:
            plain[name] = backend
    return plain, batch
