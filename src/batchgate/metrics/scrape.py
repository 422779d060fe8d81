"""The scrape: a prometheus-client collector that reads the store when
Prometheus asks, and adds up what every worker process reported.

What the database is asked at scrape time is bounded by the work in flight
(open requests, batches by status, live workers plus one retired row), never
by the finished requests it keeps: requests by outcome, tokens and cost are
the workers' own counters, which each process reports on its heartbeat row."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol

import prometheus_client
from prometheus_client import metrics_core

from batchgate.domain import stats, workers
from batchgate.domain.states import BatchStatus
from batchgate.store import port

log = logging.getLogger("batchgate.metrics")


class ScrapeSource(port.StatsReader, port.WorkerRegistry, Protocol):
    """What the scrape reads: figures and worker heartbeats."""


class StoreCollector(prometheus_client.registry.Collector):
    """``models``: the served model names (each gets its series even when
    idle); ``lease_seconds``: after this long without a heartbeat a worker
    is no longer counted as live."""

    def __init__(self, store: ScrapeSource, models: Sequence[str], lease_seconds: float) -> None:
        self.store = store
        self.models = list(models)
        self.lease_seconds = lease_seconds

    def collect(self) -> Iterator[metrics_core.Metric]:
        now = time.time()
        up = metrics_core.GaugeMetricFamily(
            "batchgate_store_up", "1 if the last scrape could read the database."
        )
        try:
            model_stats = stats.for_models(self.store.model_stats(now), self.models)
            batches = self.store.batch_status_counts()
            seen = self.store.list_workers()
        except Exception:
            log.exception("metrics scrape could not read the store")
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from _queue_families(model_stats, now)
        yield _batches_family(batches)
        yield from _worker_families(seen, now, self.lease_seconds)
        yield from merge_worker_samples(worker.stats for worker in seen if worker.stats)


def _queue_families(entries: list[stats.ModelStats], now: float) -> Iterator[metrics_core.Metric]:
    depth = metrics_core.GaugeMetricFamily(
        "batchgate_queue_depth",
        "Open requests by model and state: ready to claim, backing off after a retryable "
        "failure, or running.",
        labels=["model", "state"],
    )
    in_flight = metrics_core.GaugeMetricFamily(
        "batchgate_in_flight_requests",
        "Requests leased to a worker right now, by model.",
        labels=["model"],
    )
    oldest = metrics_core.GaugeMetricFamily(
        "batchgate_oldest_queued_age_seconds",
        "Seconds since the submission of the oldest batch with a queued request, by model "
        "(0 when nothing is queued).",
        labels=["model"],
    )
    for entry in entries:
        depth.add_metric([entry.model, "ready"], entry.queued - entry.retry_waiting)
        depth.add_metric([entry.model, "backing_off"], entry.retry_waiting)
        depth.add_metric([entry.model, "running"], entry.in_flight)
        in_flight.add_metric([entry.model], entry.in_flight)
        oldest.add_metric([entry.model], entry.oldest_queued_age(now))
    return iter((depth, in_flight, oldest))


def _batches_family(counts: dict[BatchStatus, int]) -> metrics_core.Metric:
    family = metrics_core.GaugeMetricFamily(
        "batchgate_batches", "Batches by status.", labels=["status"]
    )
    for status in BatchStatus:
        family.add_metric([status.value], counts.get(status, 0))
    return family


def _worker_families(
    seen: list[workers.WorkerHeartbeat], now: float, lease_seconds: float
) -> Iterator[metrics_core.Metric]:
    alive = [worker for worker in seen if worker.is_alive(now, lease_seconds)]
    count = metrics_core.GaugeMetricFamily(
        "batchgate_workers_alive", "Worker processes that heartbeat within the lease."
    )
    count.add_metric([], len(alive))
    heartbeat = metrics_core.GaugeMetricFamily(
        "batchgate_worker_last_heartbeat_timestamp_seconds",
        "When each running worker last reported (unix seconds).",
        labels=["worker", "host"],
    )
    # Stopped workers and long-silent ones are left out, so the label set
    # stays as small as the fleet; their counters still count below.
    for worker in seen:
        if worker.stopped_at is None and now - worker.last_seen_at <= 10 * lease_seconds:
            heartbeat.add_metric([worker.id, worker.host], worker.last_seen_at)
    return iter((count, heartbeat))


def merge_worker_samples(reports: Iterable[dict[str, Any]]) -> Iterator[metrics_core.Metric]:
    """Sum the counters and histograms every worker reported (same family,
    same sample name, same labels: add the values)."""
    merged = workers.merge_stats(reports)
    for name, family in sorted(merged.items()):
        metric = metrics_core.Metric(name, family["help"], family["type"])
        samples = {
            (sample_name, tuple(sorted(labels.items()))): value
            for sample_name, labels, value in family["samples"]
        }
        for (sample_name, labels), value in sorted(samples.items(), key=_bucket_order):
            metric.add_sample(sample_name, dict(labels), value)
        yield metric


def _bucket_order(item: tuple[tuple[str, tuple[tuple[str, str], ...]], float]) -> tuple[Any, ...]:
    """Histogram buckets must be listed in rising ``le`` per label set."""
    (sample_name, labels), _value = item
    plain = tuple(pair for pair in labels if pair[0] != "le")
    bound = next((float(value) for key, value in labels if key == "le"), 0.0)
    return (plain, sample_name != f"{sample_name.removesuffix('_bucket')}_bucket", bound)


def registry(
    store: ScrapeSource, models: Sequence[str], lease_seconds: float
) -> prometheus_client.CollectorRegistry:
    """A registry holding only this deployment's figures (not the API
    process's own Python runtime metrics, which say nothing about the fleet)."""
    result = prometheus_client.CollectorRegistry(auto_describe=False)
    result.register(StoreCollector(store, models, lease_seconds))
    return result
