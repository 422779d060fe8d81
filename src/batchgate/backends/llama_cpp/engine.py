"""The engine thread: owns the llama.cpp runtime and runs the scheduler.

llama.cpp calls block for tens to hundreds of milliseconds, so they run on a
dedicated thread and the asyncio server stays responsive. The thread is
started by the first :meth:`Engine.submit`, which is also when the model is
loaded. Jobs arrive through a queue; results go back through each job's
``deliver`` callback (thread-safe by contract).
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import Literal

from batchgate.backends import base
from batchgate.backends.llama_cpp import options, runtime, scheduler

_Command = scheduler.Job | Literal["wake", "stop"]


class Engine:
    def __init__(self, opts: options.EngineOptions, model_path: Path) -> None:
        self._opts = opts
        self._model_path = model_path
        self._inbox: queue.SimpleQueue[_Command] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False
        self.stats = scheduler.Stats()

    def submit(self, job: scheduler.Job) -> None:
        with self._lock:
            if self._closed:
                raise base.BackendError("the llama_cpp engine is closed", retryable=True)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="batchgate-llama-cpp", daemon=True
                )
                self._thread.start()
            self._inbox.put(job)

    def wake(self) -> None:
        """Make the engine look at cancellation flags now, even if idle."""
        self._inbox.put("wake")

    def close(self) -> None:
        """Stop the thread (failing unfinished jobs) and free the model. Blocks."""
        with self._lock:
            self._closed = True
            thread = self._thread
            self._inbox.put("stop")
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        try:
            rt = runtime.Runtime(self._opts, self._model_path)
        except Exception as exc:
            self._refuse_all(
                base.BackendError(
                    f"llama_cpp could not load {self._model_path}: {exc}", retryable=False
                )
            )
            return
        sched = scheduler.Scheduler(rt, self._opts, self.stats)
        closed = base.BackendError("the llama_cpp engine was closed", retryable=True)
        try:
            while self._take_commands(sched):
                sched.step()
        except Exception as exc:  # a bug or a native failure: fail loudly, not hang
            closed = base.BackendError(f"llama_cpp engine failed: {exc!r}", retryable=True)
            raise
        finally:
            sched.fail_all(closed)
            sched.close()
            self._refuse_all(closed)
            rt.close()

    def _take_commands(self, sched: scheduler.Scheduler) -> bool:
        """Move queued commands into the scheduler, blocking while it has no
        work. False once asked to stop."""
        while True:
            try:
                command = self._inbox.get(block=sched.idle())
            except queue.Empty:
                return True
            if command == "stop":
                return False
            if isinstance(command, scheduler.Job):
                sched.add(command)

    def _refuse_all(self, error: base.BackendError) -> None:
        """After the thread gave up: fail queued jobs and refuse new ones."""
        with self._lock:
            self._closed = True
        while True:
            try:
                command = self._inbox.get_nowait()
            except queue.Empty:
                return
            if isinstance(command, scheduler.Job):
                command.deliver(error)
