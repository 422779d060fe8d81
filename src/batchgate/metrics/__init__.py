"""Prometheus metrics for a deployment of many processes on one database.

Two sources, merged at scrape time by the API process (``/metrics``):

- ``store.py``: what the database holds now (queue depth, in-flight, oldest
  queued age, batches by status, worker heartbeats), read with a few grouped
  queries when Prometheus scrapes. Exact however many workers on however many
  hosts share the database, and nothing to keep in sync.
- ``worker.py``: what only a worker process sees (upstream latency, retries
  and their causes, attempts, tokens and cost as it records them), counted in
  memory with prometheus-client and written to the worker's heartbeat row;
  the scrape sums the rows of every worker that ever reported, so totals
  survive restarts and cover every host.
"""
