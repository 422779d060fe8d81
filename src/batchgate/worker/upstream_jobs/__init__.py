"""The upstream-job driver: a provider-batch model's rows through the
provider's own batch API (domain/upstream_jobs.py holds the rules, this
package the I/O; worker/upstream_lines.py renders and reads the lines).

The worker runs one driver per ``openai_batch`` / ``anthropic_batch`` model
(``UpstreamJobDriver``). Each tick it

1. flushes: packs the model's queued rows, whichever tenant's batch they
   come from, into a new job when one is due (``uj.flush_at``), at most the
   model's current job size (halved after each refusal as too large);
2. falls back (if the model names a real-time upstream): rows of jobs not
   yet at the provider whose window is running out go to the real-time lane;
3. steps every due job it can lease: assembling -> (find or upload the
   file) -> uploaded -> (find or create the batch) -> submitted -> polled
   with back-off -> ended -> results streamed back, rows still held
   re-queued, handed to the real-time lane or expired -> downloaded.

Every step can be repeated after a crash: before anything is created
upstream the driver looks for it, and every write to a row is fenced on the
job, so results written twice apply once. An upstream error on a step is
recorded on the job (``last_error``) and the step is tried again after a
back-off; nothing here may stop the worker.

Where each part lives:

- ``driver.py``: the loop (tick, drain), flush, the deadline fallback of
  unsent jobs, and stepping a job by its state;
- ``sending.py``: assembling, uploaded and the create, up to submitted; a
  job refused as too large;
- ``adoption.py``: crash adoption, the look-ups before anything is created
  (``find_file``, ``find_batch``, ``start_create``);
- ``polling.py``: a submitted job polled, cancelled upstream, ended;
- ``results.py``: an ended job's results written back, unanswered rows
  settled;
- ``step_errors.py``: a failed step backed off, a job given up;
- ``lease.py``: a job's lease kept during a step, handed back on drain;
- ``cleanup.py``: a done job forgotten, its files deleted at the provider;
- ``context.py``: what all steps share (settings, this process's memory of
  its jobs, the fenced writes);
- ``lanes.py``: what worker/loop.py needs beside the driver.
"""

from __future__ import annotations

from batchgate.worker.upstream_jobs.context import DriverStore
from batchgate.worker.upstream_jobs.driver import UpstreamJobDriver
from batchgate.worker.upstream_jobs.lanes import count_realtime, split_backends

__all__ = ["DriverStore", "UpstreamJobDriver", "count_realtime", "split_backends"]
